package fetch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/internal/failure"
)

// Lineage lists builds from a LineageOS-updater-shaped API (/api/v2/devices/<codename>/builds).
type Lineage struct {
	src devices.Source
	hc  *http.Client
}

// NewLineage returns a source for a catalog entry of kind lineage-api.
func NewLineage(src devices.Source, hc *http.Client) *Lineage {
	if hc == nil {
		hc = NewHTTPClient(nil)
	}
	return &Lineage{src: src, hc: hc}
}

// Name implements Source.
func (l *Lineage) Name() string { return l.src.Name }

type lineageFile struct {
	Filename string          `json:"filename"`
	URL      string          `json:"url"`
	SHA256   string          `json:"sha256"`
	SHA1     string          `json:"sha1"`
	Size     json.RawMessage `json:"size"`
}

type lineageBuild struct {
	lineageFile
	Datetime json.RawMessage `json:"datetime"`
	Date     string          `json:"date"`
	Version  string          `json:"version"`
	Type     string          `json:"type"`
	Files    []lineageFile   `json:"files"`
}

func num(raw json.RawMessage) int64 {
	var n int64
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		n, _ = strconv.ParseInt(s, 10, 64)
	}
	return n
}

// List implements Source. Both the flat shape (one file per build) and the files-array shape are read.
func (l *Lineage) List(ctx context.Context, opt ListOptions) ([]Build, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.src.URL, nil)
	if err != nil {
		return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("release: source %s: %w", l.src.Name, err))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := l.hc.Do(req)
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("release: %s: %w", l.src.Name, redactErr(err)))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("release: %s: HTTP %s from %s", l.src.Name, resp.Status, l.src.URL))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("release: %s: %w", l.src.Name, err))
	}
	var builds []lineageBuild
	if err := json.Unmarshal(body, &builds); err != nil {
		var wrapped struct {
			Response []lineageBuild `json:"response"`
		}
		if err2 := json.Unmarshal(body, &wrapped); err2 != nil {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: %s: not a builds list: %w", l.src.Name, err))
		}
		builds = wrapped.Response
	}
	var out []Build
	for _, b := range builds {
		files := b.Files
		if len(files) == 0 {
			files = []lineageFile{b.lineageFile}
		}
		date := time.Unix(num(b.Datetime), 0).UTC()
		for _, f := range files {
			if f.Filename == "" || f.URL == "" {
				continue
			}
			c := Checksum{Kind: "api"}
			switch {
			case f.SHA256 != "":
				c.Algo, c.Value = "sha256", f.SHA256
			case f.SHA1 != "":
				c.Algo, c.Value = "sha1", f.SHA1
			}
			if opt.Tag != "" && opt.Tag != b.Version && opt.Tag != f.Filename {
				continue
			}
			out = append(out, Build{Source: l.src.Name, Family: l.src.Family, Version: b.Version, Date: date,
				Asset: f.Filename, Size: num(f.Size), URL: f.URL, Checksum: c})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Date.After(out[j].Date) })
	return out, nil
}
