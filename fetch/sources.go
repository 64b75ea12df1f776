package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/internal/failure"
)

// Options configure Open.
type Options struct {
	GitHub GitHubOptions
	// HTTP is the client for JSON sources (default: NewHTTPClient).
	HTTP *http.Client
}

// Open returns the Source for a catalog (or --source) entry.
func Open(s devices.Source, opt Options) (Source, error) {
	switch s.Kind {
	case "github":
		return NewGitHub(s, opt.GitHub)
	case "lineage-api":
		return NewLineage(s, opt.HTTP), nil
	case "ota-json":
		return NewOTAJSON(s, opt.HTTP, opt.GitHub)
	}
	return nil, failure.Kinded(failure.ErrUsage, fmt.Errorf("release: source %s: unknown kind %q", s.Name, s.Kind))
}

// ParseSpec reads a --source value naming a source outside the catalog: github:OWNER/REPO[:ASSET_REGEX]
// or ota-json:URL / ota-json:OWNER/REPO/PATH[@REF]. ok is false for a plain name (a catalog source).
func ParseSpec(spec string) (src devices.Source, ok bool, err error) {
	kind, rest, found := strings.Cut(spec, ":")
	if !found || (kind != "github" && kind != "ota-json") {
		return devices.Source{}, false, nil
	}
	src = devices.Source{Name: spec, Kind: kind, Family: "custom", Origin: "command line"}
	switch kind {
	case "github":
		repo, re, _ := strings.Cut(rest, ":")
		src.Name = "github:" + repo
		src.Repo, src.Asset, src.Checksum = repo, re, "auto"
		if src.Asset == "" {
			src.Asset = `(?i)\.zip$`
		}
	case "ota-json":
		src.Checksum = "json"
		if strings.HasPrefix(rest, "https://") || strings.HasPrefix(rest, "http://") {
			src.URL = rest
			src.Name = "ota-json:" + redactURL(rest)
			break
		}
		loc, ref, _ := strings.Cut(rest, "@")
		parts := strings.SplitN(loc, "/", 3)
		if len(parts) != 3 {
			return src, true, failure.Kinded(failure.ErrUsage, fmt.Errorf("--source %s: want ota-json:https://… or ota-json:OWNER/REPO/PATH[@REF]", spec))
		}
		src.Repo, src.Path, src.Ref = parts[0]+"/"+parts[1], parts[2], ref
	}
	if err := src.Validate(); err != nil {
		return src, true, fmt.Errorf("--source %s: %w", spec, err)
	}
	return src, true, nil
}

// SourceError is one source that could not be listed.
type SourceError struct {
	Source string `json:"source"`
	Err    error  `json:"-"`
}

func (e SourceError) Error() string { return e.Source + ": " + e.Err.Error() }

// ListAll lists every source, in order, and returns what the reachable ones answered with one
// SourceError per failed source. It fails (kind I/O, or the only source's own kind) only when no
// source answered.
func ListAll(ctx context.Context, srcs []Source, opt ListOptions) ([]Build, []SourceError, error) {
	var all []Build
	var failed []SourceError
	answered := 0
	for _, s := range srcs {
		b, err := s.List(ctx, opt)
		if err != nil {
			if ctx.Err() != nil {
				return nil, failed, ctx.Err()
			}
			failed = append(failed, SourceError{Source: s.Name(), Err: err})
			continue
		}
		answered++
		all = append(all, b...)
	}
	if answered == 0 && len(failed) > 0 {
		return nil, failed, noneAnswered(failed)
	}
	return all, failed, nil
}

func noneAnswered(failed []SourceError) error {
	if len(failed) == 1 {
		return failed[0].Err
	}
	msgs := make([]string, len(failed))
	for i, f := range failed {
		msgs[i] = f.Error()
	}
	return failure.Kinded(failure.ErrIO, fmt.Errorf("release: no source answered: %s", strings.Join(msgs, "; ")))
}

// First tries the sources in order: the newest build of the first source that lists one is handed to
// get (which downloads it); when listing or get fails, the next source is tried. It returns get's
// result, the build that served and the sources skipped on the way.
func First(ctx context.Context, srcs []Source, opt ListOptions, get func(context.Context, Build) (string, error)) (string, Build, []SourceError, error) {
	var skipped []SourceError
	var lastGetErr error
	lastGetSrc := ""
	for _, s := range srcs {
		builds, err := s.List(ctx, opt)
		if err == nil && len(builds) == 0 {
			err = failure.Kinded(failure.ErrIO, errors.New("no build matches"))
		}
		if err != nil {
			if ctx.Err() != nil {
				return "", Build{}, skipped, ctx.Err()
			}
			skipped = append(skipped, SourceError{Source: s.Name(), Err: err})
			continue
		}
		path, err := get(ctx, builds[0])
		if err == nil {
			return path, builds[0], skipped, nil
		}
		if ctx.Err() != nil {
			return "", Build{}, skipped, err
		}
		lastGetErr, lastGetSrc = err, s.Name()
		skipped = append(skipped, SourceError{Source: s.Name(), Err: err})
	}
	if lastGetErr != nil && len(skipped) == 1 {
		return "", Build{}, skipped, lastGetErr
	}
	if len(skipped) == 0 {
		return "", Build{}, nil, failure.Kinded(failure.ErrUsage, errors.New("release: no sources to try"))
	}
	if lastGetErr == nil {
		return "", Build{}, skipped, noneAnswered(skipped)
	}
	// Keep the download's own kind (a checksum mismatch is invalid input, not an I/O failure).
	var earlier []string
	for _, s := range skipped {
		if s.Source != lastGetSrc || s.Err != lastGetErr {
			earlier = append(earlier, s.Error())
		}
	}
	return "", Build{}, skipped, fmt.Errorf("release: every source failed (%s); the last download, from %s: %w", strings.Join(earlier, "; "), lastGetSrc, lastGetErr)
}
