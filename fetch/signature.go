package fetch

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"

	"github.com/romforge/romforge/internal/failure"
)

// AOSPTestKeys are the SHA-256 fingerprints of AOSP's public test certificates: anyone can sign with
// them, so a ROM signed with one proves nothing about who built it.
var AOSPTestKeys = map[string]string{
	// build/target/product/security/testkey.x509.pem (C=US, ST=California, L=Mountain View, O=Android, CN=Android)
	"4c389ce19a57d1b6de60c4b8ada059338866d193969d2fbae3e2b5025e2c7655": "AOSP testkey",
}

// Signature is the result of checking an OTA zip's whole-file signature.
type Signature struct {
	Present bool `json:"present"`
	Valid   bool `json:"valid"`
	// SignerSHA256 is the signer certificate's SHA-256 fingerprint (hex).
	SignerSHA256 string `json:"signer_sha256,omitempty"`
	Subject      string `json:"subject,omitempty"`
	// TestKey names the AOSP test key it is, when it is one.
	TestKey string `json:"test_key,omitempty"`
	// Pinned is true when the signer is one the catalog pins for the source.
	Pinned bool   `json:"pinned"`
	Error  string `json:"error,omitempty"`
}

// ErrNoSignature reports a zip without a signapk whole-file signature.
var ErrNoSignature = errors.New("no whole-file signature")

// maxSig bounds the signature block (real ones are a few KB).
const maxSig = 64 << 10

// VerifyOTA checks the signapk whole-file signature of the zip at path: a PKCS#7 SignedData in the zip
// comment over everything before the comment. pinned lists accepted signer fingerprints.
func VerifyOTA(path string, pinned []string) (*Signature, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return VerifyOTAReader(f, st.Size(), pinned)
}

// VerifyOTAReader is VerifyOTA over an io.ReaderAt.
func VerifyOTAReader(r io.ReaderAt, size int64, pinned []string) (*Signature, error) {
	res := &Signature{}
	if size < 22 {
		return res, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: %d bytes is too small for a zip", size))
	}
	var foot [6]byte
	if _, err := r.ReadAt(foot[:], size-6); err != nil {
		return res, err
	}
	// signapk's footer: signature start (from the end), 0xffff, comment length.
	sigStart := int64(binary.LittleEndian.Uint16(foot[0:]))
	marker := binary.LittleEndian.Uint16(foot[2:])
	commentLen := int64(binary.LittleEndian.Uint16(foot[4:]))
	if marker != 0xffff || commentLen < 6 || sigStart > commentLen || sigStart < 6 || commentLen+22 > size {
		return res, ErrNoSignature
	}
	// The EOCD must end right before the comment and declare this comment length.
	var eocd [22]byte
	if _, err := r.ReadAt(eocd[:], size-commentLen-22); err != nil {
		return res, err
	}
	if binary.LittleEndian.Uint32(eocd[:]) != 0x06054b50 || int64(binary.LittleEndian.Uint16(eocd[20:])) != commentLen {
		return res, ErrNoSignature
	}
	res.Present = true
	sigLen := sigStart - 6
	if sigLen <= 0 || sigLen > maxSig {
		return res, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: signature block of %d bytes", sigLen))
	}
	sig := make([]byte, sigLen)
	if _, err := r.ReadAt(sig, size-sigStart); err != nil {
		return res, err
	}
	signedLen := size - commentLen - 2
	cert, algo, digestAlgo, sigBytes, err := parsePKCS7(sig)
	if err != nil {
		res.Error = err.Error()
		return res, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: OTA signature: %w", err))
	}
	fp := sha256.Sum256(cert.Raw)
	res.SignerSHA256 = hex.EncodeToString(fp[:])
	res.Subject = cert.Subject.String()
	res.TestKey = AOSPTestKeys[res.SignerSHA256]
	for _, p := range pinned {
		if p == res.SignerSHA256 {
			res.Pinned = true
		}
	}
	var h interface {
		io.Writer
		Sum([]byte) []byte
	}
	var hf crypto.Hash
	switch {
	case digestAlgo.Equal(oidSHA1):
		h, hf = sha1.New(), crypto.SHA1
	case digestAlgo.Equal(oidSHA256):
		h, hf = sha256.New(), crypto.SHA256
	default:
		res.Error = "unsupported digest algorithm " + digestAlgo.String()
		return res, failure.Kinded(failure.ErrInvalid, errors.New("release: "+res.Error))
	}
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, signedLen)); err != nil {
		return res, err
	}
	digest := h.Sum(nil)
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		err = rsa.VerifyPKCS1v15(pub, hf, digest, sigBytes)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sigBytes) {
			err = errors.New("ECDSA signature does not verify")
		}
	default:
		err = fmt.Errorf("unsupported key type %T (%v)", pub, algo)
	}
	if err != nil {
		res.Error = err.Error()
		return res, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: OTA signature does not match the file (tampered or corrupt): %w", err))
	}
	res.Valid = true
	return res, nil
}

var (
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSHA1       = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

type signedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	ContentInfo      asn1.RawValue
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      []signerInfo  `asn1:"set"`
}

type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type signerInfo struct {
	Version          int
	IssuerAndSerial  issuerAndSerial
	DigestAlgorithm  algorithmIdentifier
	AuthAttributes   asn1.RawValue `asn1:"optional,tag:0"`
	DigestEncryption algorithmIdentifier
	EncryptedDigest  []byte
	UnauthAttributes asn1.RawValue `asn1:"optional,tag:1"`
}

// parsePKCS7 extracts the signer certificate, algorithms and signature of a detached SignedData as
// signapk writes it (no authenticated attributes: the signature is over the data's digest).
func parsePKCS7(der []byte) (*x509.Certificate, asn1.ObjectIdentifier, asn1.ObjectIdentifier, []byte, error) {
	var ci contentInfo
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("not PKCS#7: %w", err)
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, nil, nil, nil, fmt.Errorf("PKCS#7 content type %v is not signedData", ci.ContentType)
	}
	var sd signedData
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("signedData: %w", err)
	}
	if len(sd.SignerInfos) != 1 {
		return nil, nil, nil, nil, fmt.Errorf("%d signers (want 1)", len(sd.SignerInfos))
	}
	si := sd.SignerInfos[0]
	if len(si.AuthAttributes.Bytes) > 0 {
		return nil, nil, nil, nil, errors.New("signatures with authenticated attributes are not signapk's format")
	}
	certs, err := x509.ParseCertificates(sd.Certificates.Bytes)
	if err != nil || len(certs) == 0 {
		return nil, nil, nil, nil, fmt.Errorf("no signer certificate: %v", err)
	}
	for _, c := range certs {
		if c.SerialNumber.Cmp(si.IssuerAndSerial.Serial) == 0 {
			return c, si.DigestEncryption.Algorithm, si.DigestAlgorithm.Algorithm, si.EncryptedDigest, nil
		}
	}
	return nil, nil, nil, nil, errors.New("signer certificate not included")
}
