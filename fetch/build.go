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
	Source  string `json:"source"`
	Family  string `json:"rom"`
	Version string `json:"version"`
	// Type is the build type a JSON source gives (nightly, monthly, unofficial, …).
	Type  string    `json:"type,omitempty"`
	Tag   string    `json:"tag,omitempty"`
	Date  time.Time `json:"date"`
	Pre   bool      `json:"prerelease,omitempty"`
	Asset string    `json:"asset"`
	Size  int64     `json:"size"`
	URL   string    `json:"url"`
	// Checksum is the expected hash ("" Value when the source publishes none).
	Checksum Checksum `json:"checksum"`
	// Files are the build's other files (the LineageOS API lists boot.img, dtbo.img, vendor_boot.img,
	// recovery images beside the OTA zip); they belong to this build and are not fetched with it.
	Files []File `json:"files,omitempty"`
	// checksumURL is a sidecar to fetch before downloading (GitHub sidecar assets).
	checksumURL string
}

// File is one extra file of a build.
type File struct {
	Name     string   `json:"name"`
	URL      string   `json:"url"`
	Size     int64    `json:"size"`
	Checksum Checksum `json:"checksum"`
}

// Checksum is an expected digest.
type Checksum struct {
	// Algo is sha256, sha1, sha512 or md5.
	Algo  string `json:"algo,omitempty"`
	Value string `json:"value,omitempty"`
	// Kind says where it came from: sidecar, body, auto (GitHub, neither found), api (LineageOS API),
	// json (OTA JSON), given (--sha256), none.
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

// Weak reports whether the digest is one that proves integrity against accidents but not against
// someone who can change the file (md5, sha1); callers warn about it.
func (c Checksum) Weak() bool { return c.Value != "" && (c.Algo == "md5" || c.Algo == "sha1") }

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
