package fetch

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"time"

	"github.com/romforge/romforge/internal/failure"
)

// Build is one downloadable ROM build.
type Build struct {
	Source  string    `json:"source"`
	Family  string    `json:"rom"`
	Version string    `json:"version"`
	Tag     string    `json:"tag,omitempty"`
	Date    time.Time `json:"date"`
	Pre     bool      `json:"prerelease,omitempty"`
	Asset   string    `json:"asset"`
	Size    int64     `json:"size"`
	URL     string    `json:"url"`
	// Checksum is the expected hash ("" Value when the source publishes none).
	Checksum Checksum `json:"checksum"`
	// checksumURL is a sidecar to fetch before downloading (GitHub sidecar assets).
	checksumURL string
}

// Checksum is an expected digest.
type Checksum struct {
	// Algo is sha256, sha1, sha512 or md5.
	Algo  string `json:"algo,omitempty"`
	Value string `json:"value,omitempty"`
	// Kind says where it came from: sidecar, body, api, given, none.
	Kind string `json:"kind"`
}

// NewHash returns a hash for the algorithm.
func (c Checksum) NewHash() (hash.Hash, error) {
	switch c.Algo {
	case "sha256":
		return sha256.New(), nil
	case "sha1":
		return sha1.New(), nil
	case "sha512":
		return sha512.New(), nil
	case "md5":
		return md5.New(), nil
	}
	return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: unknown checksum algorithm %q", c.Algo))
}

// Matches reports whether a computed digest equals the expected one.
func (c Checksum) Matches(sum []byte) bool {
	return strings.EqualFold(hex.EncodeToString(sum), c.Value)
}

// Source lists builds.
type Source interface {
	Name() string
	List(ctx context.Context, opt ListOptions) ([]Build, error)
}

// ListOptions filter listings.
type ListOptions struct {
	// Tag selects one release ("" for all, newest first).
	Tag string
	// Pre includes pre-releases.
	Pre bool
}
