package avb

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"math/big"
)

// EncodePublicKey returns key in libavb's AvbRSAPublicKeyHeader form: key_num_bits and n0inv (big-endian
// u32), then the modulus and R² mod N (R = 2^bitlen(N)), each key_num_bits/8 bytes, big-endian. This is
// the .avbpubkey format and what vbmeta embeds. libavb only supports the exponent 65537.
func EncodePublicKey(key *rsa.PublicKey) ([]byte, error) {
	if key == nil || key.N == nil || key.N.Sign() <= 0 {
		return nil, invalid("no RSA public key")
	}
	if key.E != 65537 {
		return nil, invalid("RSA exponent %d is not supported by AVB (only 65537)", key.E)
	}
	n := key.N
	bitLen := n.BitLen()
	numBits := 1
	for numBits < bitLen {
		numBits <<= 1
	}
	if n.Bit(0) == 0 {
		return nil, invalid("RSA modulus is even")
	}
	two32 := new(big.Int).Lsh(big.NewInt(1), 32)
	inv := new(big.Int).ModInverse(new(big.Int).Mod(n, two32), two32)
	n0inv := new(big.Int).Sub(two32, inv)
	r := new(big.Int).Lsh(big.NewInt(1), uint(bitLen))
	rr := new(big.Int).Mod(new(big.Int).Mul(r, r), n)

	out := make([]byte, 8+2*numBits/8)
	binary.BigEndian.PutUint32(out[0:], uint32(numBits))
	binary.BigEndian.PutUint32(out[4:], uint32(n0inv.Uint64()))
	n.FillBytes(out[8 : 8+numBits/8])
	rr.FillBytes(out[8+numBits/8:])
	return out, nil
}

// ParsePublicKey decodes an AvbRSAPublicKeyHeader blob (as embedded in vbmeta or in a .avbpubkey file).
func ParsePublicKey(b []byte) (*rsa.PublicKey, error) {
	if len(b) < 8 {
		return nil, formatErr(0, "public key truncated: %d bytes", len(b))
	}
	bits := binary.BigEndian.Uint32(b)
	if bits == 0 || bits%8 != 0 || bits > 16384 {
		return nil, formatErr(0, "public key size of %d bits is not supported", bits)
	}
	if uint64(len(b)) != 8+2*uint64(bits)/8 {
		return nil, formatErr(0, "public key blob is %d bytes; a %d-bit key takes %d", len(b), bits, 8+2*bits/8)
	}
	n := new(big.Int).SetBytes(b[8 : 8+bits/8])
	if n.Sign() == 0 {
		return nil, formatErr(8, "public key modulus is zero")
	}
	return &rsa.PublicKey{N: n, E: 65537}, nil
}

// ParsePrivateKeyPEM reads an RSA private key in PEM: PKCS#1 ("RSA PRIVATE KEY") or PKCS#8 ("PRIVATE KEY").
func ParsePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, invalid("no RSA private key PEM block found (want PKCS#1 'RSA PRIVATE KEY' or PKCS#8 'PRIVATE KEY')")
		}
		switch blk.Type {
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
			if err != nil {
				return nil, invalid("PKCS#1 private key: %v", err)
			}
			return k, nil
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, invalid("PKCS#8 private key: %v", err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, invalid("PKCS#8 key is a %T, AVB needs RSA", k)
			}
			return rk, nil
		case "ENCRYPTED PRIVATE KEY":
			return nil, invalid("encrypted private keys are not supported; decrypt it first (openssl pkey -in KEY -out PLAIN.pem)")
		}
	}
}

// parsePublicKeyPEM reads an RSA public key from PEM: any private key form, PKIX "PUBLIC KEY" or
// PKCS#1 "RSA PUBLIC KEY" (avbtool accepts public keys for --key in verify_image too).
func parsePublicKeyPEM(data []byte) (*rsa.PublicKey, error) {
	if k, err := ParsePrivateKeyPEM(data); err == nil {
		return &k.PublicKey, nil
	}
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, invalid("no RSA key PEM block found")
		}
		switch blk.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, invalid("public key: %v", err)
			}
			rk, ok := k.(*rsa.PublicKey)
			if !ok {
				return nil, invalid("public key is a %T, AVB needs RSA", k)
			}
			return rk, nil
		case "RSA PUBLIC KEY":
			k, err := x509.ParsePKCS1PublicKey(blk.Bytes)
			if err != nil {
				return nil, invalid("PKCS#1 public key: %v", err)
			}
			return k, nil
		}
	}
}

// ExtractPublicKey turns a PEM key (private or public) into .avbpubkey bytes, like
// `avbtool extract_public_key`.
func ExtractPublicKey(pemData []byte) ([]byte, error) {
	k, err := parsePublicKeyPEM(pemData)
	if err != nil {
		return nil, err
	}
	return EncodePublicKey(k)
}

// PublicKeyFromFile accepts either .avbpubkey bytes or a PEM key and returns the .avbpubkey form.
func PublicKeyFromFile(data []byte) ([]byte, error) {
	if _, err := ParsePublicKey(data); err == nil {
		return data, nil
	}
	return ExtractPublicKey(data)
}
