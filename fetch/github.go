package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/internal/failure"
)

// GitHubOptions configure GitHub access.
type GitHubOptions struct {
	// Token authenticates (GITHUB_TOKEN); never printed or logged.
	Token string
	// API is the API base URL for GitHub Enterprise and tests ("" for api.github.com).
	API string
	// Wait sleeps until the rate limit resets instead of failing.
	Wait bool
	// HTTP is the client to use (default: one with retries on 5xx and dropped connections).
	HTTP *http.Client
	// Sleep is used for rate-limit waits and backoff (tests replace it).
	Sleep func(context.Context, time.Duration) error
}

// GitHub lists releases of one repository as builds.
type GitHub struct {
	src    devices.Source
	client *github.Client
	opt    GitHubOptions
	asset  *regexp.Regexp
	base   *url.URL
}

// newClient makes a go-github client. A fresh one is made after a rate-limit wait, because a client
// remembers the reset time and would refuse to send anything until its own clock passes it.
func (g *GitHub) newClient() *github.Client {
	c := github.NewClient(g.opt.HTTP)
	if g.opt.Token != "" {
		c = c.WithAuthToken(g.opt.Token)
	}
	if g.base != nil {
		c.BaseURL = g.base
	}
	return c
}

// NewGitHub returns a source for a catalog entry of kind github.
func NewGitHub(src devices.Source, opt GitHubOptions) (*GitHub, error) {
	re, err := regexp.Compile(src.Asset)
	if err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: source %s: asset regexp: %w", src.Name, err))
	}
	if opt.HTTP == nil {
		opt.HTTP = NewHTTPClient(opt.Sleep)
	}
	if opt.Sleep == nil {
		opt.Sleep = sleepCtx
	}
	g := &GitHub{src: src, opt: opt, asset: re}
	if opt.API != "" {
		u, err := url.Parse(strings.TrimSuffix(opt.API, "/") + "/")
		if err != nil {
			return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("release: --github-api %q: %w", opt.API, err))
		}
		g.base = u
	}
	g.client = g.newClient()
	return g, nil
}

// Name implements Source.
func (g *GitHub) Name() string { return g.src.Name }

func (g *GitHub) ownerRepo() (string, string) {
	o, r, _ := strings.Cut(g.src.Repo, "/")
	return o, r
}

// call runs fn, waiting out rate limits when asked to.
func (g *GitHub) call(ctx context.Context, fn func() (*github.Response, error)) error {
	for attempt := 0; ; attempt++ {
		_, err := fn()
		if err == nil {
			return nil
		}
		var rl *github.RateLimitError
		var ab *github.AbuseRateLimitError
		var wait time.Duration
		switch {
		case errors.As(err, &rl):
			wait = time.Until(rl.Rate.Reset.Time)
			if !g.opt.Wait || attempt > 0 {
				return failure.Kinded(failure.ErrIO, fmt.Errorf("release: GitHub rate limit reached (%d requests/hour); it resets at %s (in %s): retry then, use --wait to sleep until reset, or set GITHUB_TOKEN for a higher limit",
					rl.Rate.Limit, rl.Rate.Reset.Time.Local().Format(time.RFC1123), wait.Round(time.Second)))
			}
		case errors.As(err, &ab):
			wait = time.Minute
			if ab.RetryAfter != nil {
				wait = *ab.RetryAfter
			}
			if !g.opt.Wait || attempt > 0 {
				return failure.Kinded(failure.ErrIO, fmt.Errorf("release: GitHub secondary rate limit; retry after %s or use --wait", wait.Round(time.Second)))
			}
		default:
			var er *github.ErrorResponse
			if errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound {
				return failure.Kinded(failure.ErrIO, fmt.Errorf("release: %s not found on GitHub (check the source's repo, or the token's access): %w", g.src.Repo, redactErr(err)))
			}
			return failure.Kinded(failure.ErrIO, fmt.Errorf("release: GitHub %s: %w", g.src.Repo, redactErr(err)))
		}
		if wait < 0 {
			wait = 0
		}
		if err := g.opt.Sleep(ctx, wait+time.Second); err != nil {
			return err
		}
		g.client = g.newClient()
	}
}

// List implements Source: releases newest first (drafts never, pre-releases with opt.Pre), one Build per
// matching asset.
func (g *GitHub) List(ctx context.Context, opt ListOptions) ([]Build, error) {
	owner, repo := g.ownerRepo()
	var rels []*github.RepositoryRelease
	if opt.Tag != "" {
		var r *github.RepositoryRelease
		err := g.call(ctx, func() (*github.Response, error) {
			var resp *github.Response
			var err error
			r, resp, err = g.client.Repositories.GetReleaseByTag(ctx, owner, repo, opt.Tag)
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		rels = append(rels, r)
	} else {
		lo := &github.ListOptions{PerPage: 100}
		for page := 0; page < 50; page++ { // 5000 releases is more than any ROM repository has
			var batch []*github.RepositoryRelease
			var resp *github.Response
			err := g.call(ctx, func() (*github.Response, error) {
				var err error
				batch, resp, err = g.client.Repositories.ListReleases(ctx, owner, repo, lo)
				return resp, err
			})
			if err != nil {
				return nil, err
			}
			rels = append(rels, batch...)
			if resp == nil || resp.NextPage == 0 {
				break
			}
			lo.Page = resp.NextPage
		}
	}
	var out []Build
	for _, r := range rels {
		if r.GetDraft() || r.GetPrerelease() && !opt.Pre && opt.Tag == "" {
			continue
		}
		for _, a := range r.Assets {
			if !g.asset.MatchString(a.GetName()) {
				continue
			}
			b := Build{
				Source: g.src.Name, Family: g.src.Family, Version: r.GetName(), Tag: r.GetTagName(),
				Date: r.GetPublishedAt().Time, Pre: r.GetPrerelease(), Asset: a.GetName(),
				Size: int64(a.GetSize()), URL: a.GetBrowserDownloadURL(),
			}
			if b.Version == "" {
				b.Version = b.Tag
			}
			switch g.src.Checksum {
			case "none":
				b.Checksum = Checksum{Kind: "none"}
			case "body":
				if c, ok := ParseChecksums(r.GetBody(), a.GetName()); ok {
					c.Kind = "body"
					b.Checksum = c
				} else {
					b.Checksum = Checksum{Kind: "body"} // announced but missing: Fetch refuses
				}
			default: // sidecar, or auto: a sidecar when there is one, else the release text
				b.Checksum = Checksum{Kind: "sidecar"}
				for _, s := range r.Assets {
					if sidecarOf(a.GetName(), s.GetName(), g.src.ChecksumSuffix) {
						b.checksumURL = s.GetBrowserDownloadURL()
						break
					}
				}
				if b.checksumURL == "" && g.src.Checksum == "auto" {
					b.Checksum = Checksum{Kind: "auto"}
					if c, ok := ParseChecksums(r.GetBody(), a.GetName()); ok {
						c.Kind = "body"
						b.Checksum = c
					}
				}
			}
			out = append(out, b)
		}
	}
	return out, nil
}

var sidecarSuffixes = []string{".sha256", ".sha256sum", ".sha512", ".sha512sum", ".sha1", ".sha1sum", ".md5", ".md5sum"}

func sidecarOf(asset, candidate, suffix string) bool {
	if suffix != "" {
		return candidate == asset+suffix
	}
	for _, s := range sidecarSuffixes {
		if candidate == asset+s {
			return true
		}
	}
	return false
}

// ResolveChecksum fetches a sidecar checksum when the build has one.
func ResolveChecksum(ctx context.Context, hc *http.Client, b *Build) error {
	if b.checksumURL == "" || b.Checksum.Value != "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.checksumURL, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("release: checksum sidecar: %w", redactErr(err)))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("release: checksum sidecar: HTTP %s", resp.Status))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("release: checksum sidecar: %w", err))
	}
	c, ok := ParseChecksums(string(body), b.Asset)
	if !ok {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: checksum sidecar for %s has no usable checksum", b.Asset))
	}
	c.Kind = "sidecar"
	b.Checksum = c
	return nil
}

// redactErr drops query strings (signed asset URLs) from URL errors.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, perr := url.Parse(ue.URL)
		if perr == nil {
			u.RawQuery = ""
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
	}
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
