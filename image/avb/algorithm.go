package avb

import (
	"crypto"
	_ "crypto/sha1" // registered for hash descriptors and public key digests
	_ "crypto/sha256"
	_ "crypto/sha512"
	"strconv"
	"strings"
)

// Algorithm is AvbAlgorithmType: how the vbmeta header and auxiliary block are hashed and signed.
type Algorithm uint32

// The algorithm types of avb_crypto.h.
const (
	AlgorithmNone          Algorithm = 0
	AlgorithmSHA256RSA2048 Algorithm = 1
	AlgorithmSHA256RSA4096 Algorithm = 2
	AlgorithmSHA256RSA8192 Algorithm = 3
	AlgorithmSHA512RSA2048 Algorithm = 4
	AlgorithmSHA512RSA4096 Algorithm = 5
	AlgorithmSHA512RSA8192 Algorithm = 6
)

type algInfo struct {
	name    string
	hash    crypto.Hash // 0 for NONE
	keyBits int
}

var algorithms = map[Algorithm]algInfo{
	AlgorithmNone:          {"NONE", 0, 0},
	AlgorithmSHA256RSA2048: {"SHA256_RSA2048", crypto.SHA256, 2048},
	AlgorithmSHA256RSA4096: {"SHA256_RSA4096", crypto.SHA256, 4096},
	AlgorithmSHA256RSA8192: {"SHA256_RSA8192", crypto.SHA256, 8192},
	AlgorithmSHA512RSA2048: {"SHA512_RSA2048", crypto.SHA512, 2048},
	AlgorithmSHA512RSA4096: {"SHA512_RSA4096", crypto.SHA512, 4096},
	AlgorithmSHA512RSA8192: {"SHA512_RSA8192", crypto.SHA512, 8192},
}

// String returns the name avbtool uses, e.g. "SHA256_RSA4096".
func (a Algorithm) String() string {
	if i, ok := algorithms[a]; ok {
		return i.name
	}
	return "UNKNOWN(" + strconv.FormatUint(uint64(a), 10) + ")"
}

// Known reports whether a is one of the algorithm types libavb defines.
func (a Algorithm) Known() bool { _, ok := algorithms[a]; return ok }

// Hash is the digest used over header and auxiliary block (0 for NONE).
func (a Algorithm) Hash() crypto.Hash { return algorithms[a].hash }

// KeyBits is the RSA modulus size the algorithm needs (0 for NONE).
func (a Algorithm) KeyBits() int { return algorithms[a].keyBits }

// HashSize is the number of bytes of the stored hash.
func (a Algorithm) HashSize() int {
	if h := a.Hash(); h != 0 {
		return h.Size()
	}
	return 0
}

// SignatureSize is the number of bytes of the stored signature.
func (a Algorithm) SignatureSize() int { return a.KeyBits() / 8 }

// PublicKeySize is the size of the AvbRSAPublicKeyHeader blob for this algorithm's key.
func (a Algorithm) PublicKeySize() int {
	if a.KeyBits() == 0 {
		return 0
	}
	return 8 + 2*a.KeyBits()/8
}

// ParseAlgorithm accepts avbtool's names, case-insensitively.
func ParseAlgorithm(name string) (Algorithm, error) {
	for a, i := range algorithms {
		if strings.EqualFold(i.name, name) {
			return a, nil
		}
	}
	return 0, invalid("unknown algorithm %q (use NONE, SHA256_RSA2048, SHA256_RSA4096, SHA256_RSA8192, SHA512_RSA2048, SHA512_RSA4096 or SHA512_RSA8192)", name)
}

// hashByName maps the hash names of hash and hashtree descriptors to Go hashes.
func hashByName(name string) (crypto.Hash, bool) {
	switch name {
	case "sha1":
		return crypto.SHA1, true
	case "sha256":
		return crypto.SHA256, true
	case "sha512":
		return crypto.SHA512, true
	}
	return 0, false
}
