package fetch

import (
	"context"
	"fmt"
	"net/http"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/internal/failure"
)

// Lineage lists builds from the LineageOS download API (/api/v2/devices/<codename>/builds).
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

// List implements Source. One build's extra files (boot.img, dtbo.img, vendor_boot.img, …) stay with
// their build (Build.Files) instead of being listed as builds of their own.
func (l *Lineage) List(ctx context.Context, opt ListOptions) ([]Build, error) {
	body, err := getJSON(ctx, l.hc, l.src.Name, l.src.URL)
	if err != nil {
		return nil, err
	}
	builds, err := parseBuildsJSON(body, l.src, "api")
	if err != nil {
		return nil, err
	}
	return filterTag(builds, opt), nil
}

// getJSON GETs a JSON document of at most maxJSON bytes.
func getJSON(ctx context.Context, hc *http.Client, name, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("release: source %s: %w", name, err))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("release: %s: %w", name, redactErr(err)))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("release: %s: HTTP %s from %s", name, resp.Status, redactURL(u)))
	}
	return readCapped(resp.Body, maxJSON, name)
}
