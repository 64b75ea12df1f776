package fetch

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-github/v60/github"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/internal/failure"
)

// OTAJSON lists builds from a per-device OTA JSON file, the way the LineageOS Updater app and its
// forks (crDroid, …) read them: from a URL, or from owner/repo/path@ref on GitHub through the
// contents API (so GITHUB_TOKEN, --github-api and rate-limit handling apply as for releases).
type OTAJSON struct {
	src devices.Source
	hc  *http.Client
	gh  *GitHub
}

// NewOTAJSON returns a source for a catalog entry of kind ota-json.
func NewOTAJSON(src devices.Source, hc *http.Client, gopt GitHubOptions) (*OTAJSON, error) {
	if hc == nil {
		hc = NewHTTPClient(gopt.Sleep)
	}
	o := &OTAJSON{src: src, hc: hc}
	if src.Repo != "" {
		if gopt.HTTP == nil {
			gopt.HTTP = hc
		}
		g, err := NewGitHub(devices.Source{Name: src.Name, Kind: "github", Repo: src.Repo, Asset: ".", Family: src.Family}, gopt)
		if err != nil {
			return nil, err
		}
		o.gh = g
	}
	return o, nil
}

// Name implements Source.
func (o *OTAJSON) Name() string { return o.src.Name }

// Where says where the JSON is read from, for messages.
func (o *OTAJSON) Where() string {
	if o.gh != nil {
		w := o.src.Repo + "/" + o.src.Path
		if o.src.Ref != "" {
			w += "@" + o.src.Ref
		}
		return w
	}
	return redactURL(o.src.URL)
}

// List implements Source. Checksums come from the JSON: sha256 when present, else sha1 or md5 (a
// weak digest: Checksum.Weak, callers warn).
func (o *OTAJSON) List(ctx context.Context, opt ListOptions) ([]Build, error) {
	var body []byte
	var err error
	if o.gh != nil {
		body, err = o.readGitHub(ctx)
	} else {
		body, err = getJSON(ctx, o.hc, o.src.Name, o.src.URL)
	}
	if err != nil {
		return nil, err
	}
	builds, err := parseBuildsJSON(body, o.src, "json")
	if err != nil {
		return nil, err
	}
	return filterTag(builds, opt), nil
}

func (o *OTAJSON) readGitHub(ctx context.Context) ([]byte, error) {
	owner, repo := o.gh.ownerRepo()
	var fc *github.RepositoryContent
	var dir []*github.RepositoryContent
	err := o.gh.call(ctx, func() (*github.Response, error) {
		var resp *github.Response
		var err error
		fc, dir, resp, err = o.gh.client.Repositories.GetContents(ctx, owner, repo, o.src.Path, &github.RepositoryContentGetOptions{Ref: o.src.Ref})
		return resp, err
	})
	if err != nil {
		return nil, fmt.Errorf("release: %s (%s): %w", o.src.Name, o.Where(), err)
	}
	if fc == nil || dir != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: %s: %s is a directory, not an OTA JSON file", o.src.Name, o.Where()))
	}
	if fc.GetSize() > maxJSON {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: %s: %s is %d bytes, more than an OTA JSON", o.src.Name, o.Where(), fc.GetSize()))
	}
	// The contents API inlines files up to 1 MB; bigger ones come from their download URL.
	if fc.Content == nil || fc.GetEncoding() == "none" {
		if fc.GetDownloadURL() == "" {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: %s: %s has no content", o.src.Name, o.Where()))
		}
		return getJSON(ctx, o.hc, o.src.Name, fc.GetDownloadURL())
	}
	s, err := fc.GetContent()
	if err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: %s: %s: %w", o.src.Name, o.Where(), err))
	}
	return []byte(s), nil
}
