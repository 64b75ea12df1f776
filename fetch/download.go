package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

// DownloadOptions configure Download.
type DownloadOptions struct {
	// Dir is where the verified file lands (the cache's downloads folder by default).
	Dir string
	// AllowUnverified accepts builds without a checksum (a warning is the caller's job).
	AllowUnverified bool
	HTTP            *http.Client
	Progress        progress.Reporter
	// Retries is how many times a dropped transfer resumes before giving up (default 5).
	Retries int
	// Sleep is used between retries (tests replace it).
	Sleep func(context.Context, time.Duration) error
	// LockWait is how long to wait for another process downloading the same file (default 30 min).
	LockWait time.Duration
}

// ErrChecksum reports a downloaded file whose digest does not match.
var ErrChecksum = errors.New("checksum mismatch")

// partMeta remembers what a .part file is a prefix of, so a resume never mixes two versions.
type partMeta struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Size         int64  `json:"size"`
}

// Download fetches b into opt.Dir and returns the verified file's path. A file already there with the
// right checksum is not fetched again.
func Download(ctx context.Context, b Build, opt DownloadOptions) (string, error) {
	if opt.HTTP == nil {
		opt.HTTP = NewHTTPClient(opt.Sleep)
	}
	if opt.Sleep == nil {
		opt.Sleep = sleepCtx
	}
	if opt.Retries == 0 {
		opt.Retries = 5
	}
	if opt.LockWait == 0 {
		opt.LockWait = 30 * time.Minute
	}
	name := filepath.Base(b.Asset)
	if name == "." || name == "/" || name == "" || strings.ContainsAny(b.Asset, `/\`) || name == ".." {
		return "", failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: refusing asset name %q", b.Asset))
	}
	if err := ResolveChecksum(ctx, opt.HTTP, &b); err != nil {
		return "", err
	}
	if b.Checksum.Value == "" && !opt.AllowUnverified {
		return "", failure.Kinded(failure.ErrRefused, fmt.Errorf("release: %s has no checksum (source checksum: %s); refusing an unverifiable download (--allow-unverified accepts it)", name, b.Checksum.Kind))
	}
	if err := os.MkdirAll(opt.Dir, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(opt.Dir, name)
	unlock, err := lockFile(ctx, filepath.Join(opt.Dir, ".locks", name+".lock"), opt.LockWait, opt.Sleep)
	if err != nil {
		return "", err
	}
	defer unlock()

	if b.Checksum.Value != "" {
		if ok, _ := fileMatches(final, b.Checksum); ok {
			return final, nil
		}
	} else if st, err := os.Stat(final); err == nil && (b.Size == 0 || st.Size() == b.Size) {
		return final, nil
	}

	part := final + ".part"
	if b.Size <= 0 {
		// A bare URL states no size: ask the server, so progress shows a percentage and an ETA.
		b.Size = contentLength(ctx, opt.HTTP, b.URL)
	}
	task := &positionTask{t: progress.OrDiscard(opt.Progress).Task(name, b.Size), total: b.Size}
	var lastErr error
	for attempt := 0; attempt <= opt.Retries; attempt++ {
		if attempt > 0 {
			if err := opt.Sleep(ctx, time.Duration(attempt)*500*time.Millisecond); err != nil {
				task.Done(err)
				return "", err
			}
		}
		err := fetchInto(ctx, opt.HTTP, b, part, task)
		if err == nil {
			lastErr = nil
			break
		}
		lastErr = err
		if ctx.Err() != nil || errors.Is(err, failure.ErrInvalid) || errors.Is(err, errPermanent) {
			break
		}
	}
	if lastErr != nil {
		if st, err := os.Stat(part); err == nil && st.Size() > 0 && ctx.Err() == nil {
			lastErr = fmt.Errorf("%w (the %d bytes received are kept in %s: run the same command again to resume)", lastErr, st.Size(), part)
		}
		task.Done(lastErr)
		return "", lastErr
	}
	if b.Checksum.Value != "" {
		ok, err := fileMatches(part, b.Checksum)
		if err != nil {
			task.Done(err)
			return "", err
		}
		if !ok {
			os.Remove(part)
			os.Remove(part + ".json")
			err := failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: %s: %w (expected %s %s); the partial file was deleted — the file on the server is not the one its checksum describes", name, ErrChecksum, b.Checksum.Algo, b.Checksum.Value))
			task.Done(err)
			return "", err
		}
	}
	if err := os.Rename(part, final); err != nil {
		task.Done(err)
		return "", err
	}
	os.Remove(part + ".json")
	task.Done(nil)
	return final, nil
}

var errPermanent = errors.New("permanent HTTP failure")

// fetchInto appends the rest of b to part, resuming with Range when part is a prefix of the same file.
func fetchInto(ctx context.Context, hc *http.Client, b Build, part string, task *positionTask) error {
	var have int64
	var meta partMeta
	if st, err := os.Stat(part); err == nil {
		if mb, err := os.ReadFile(part + ".json"); err == nil && json.Unmarshal(mb, &meta) == nil && meta.URL == b.URL {
			have = st.Size()
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL, nil)
	if err != nil {
		return failure.Kinded(failure.ErrUsage, err)
	}
	req.Header.Set("Accept", "application/octet-stream")
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		// If-Range makes the server send the whole file when it changed since the part was written.
		switch {
		case meta.ETag != "":
			req.Header.Set("If-Range", meta.ETag)
		case meta.LastModified != "":
			req.Header.Set("If-Range", meta.LastModified)
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("release: downloading %s: %w", b.Asset, redactErr(err)))
	}
	defer resp.Body.Close()
	flags := os.O_WRONLY | os.O_CREATE
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have || (meta.Size > 0 && total != meta.Size) || (b.Size > 0 && total != b.Size) {
			os.Remove(part)
			return failure.Kinded(failure.ErrIO, fmt.Errorf("release: server answered an unexpected range %q; restarting", resp.Header.Get("Content-Range")))
		}
		flags |= os.O_APPEND
	case resp.StatusCode == http.StatusOK:
		flags |= os.O_TRUNC // a fresh start (no part, or the file changed)
		have = 0
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		os.Remove(part)
		return failure.Kinded(failure.ErrIO, fmt.Errorf("release: server refused the resume range; restarting"))
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
		return failure.Kinded(failure.ErrIO, fmt.Errorf("release: downloading %s: HTTP %s: %w", b.Asset, resp.Status, errPermanent))
	default:
		return failure.Kinded(failure.ErrIO, fmt.Errorf("release: downloading %s: HTTP %s", b.Asset, resp.Status))
	}
	// A mirror page instead of the file (SourceForge answers browsers with one) is not the ROM.
	if ct := strings.ToLower(resp.Header.Get("Content-Type")); strings.HasPrefix(ct, "text/html") && !strings.HasSuffix(strings.ToLower(b.Asset), ".html") {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("release: downloading %s: %s answered with a web page, not the file (a mirror chooser or a login page); try again later or pass the mirror's direct link with --url: %w", b.Asset, redactURL(resp.Request.URL.String()), errPermanent))
	}
	task.setPos(have)
	size := b.Size
	if resp.StatusCode == http.StatusOK && resp.ContentLength > 0 {
		if size > 0 && resp.ContentLength != size {
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: %s: server sends %d bytes, the release lists %d", b.Asset, resp.ContentLength, size))
		}
		size = resp.ContentLength
	}
	meta = partMeta{URL: b.URL, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"), Size: size}
	if resp.StatusCode == http.StatusPartialContent {
		_, meta.Size, _ = parseContentRange(resp.Header.Get("Content-Range"))
	}
	mb, _ := json.Marshal(meta)
	if err := os.WriteFile(part+".json", mb, 0o644); err != nil {
		return err
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return err
	}
	// Never accept more than the file's size: a server that keeps sending is cut off.
	var src io.Reader = resp.Body
	if meta.Size > 0 {
		src = io.LimitReader(resp.Body, meta.Size-have+1)
	}
	n, copyErr := io.Copy(f, progress.Reader(src, task))
	if err := f.Close(); err != nil && copyErr == nil {
		copyErr = err
	}
	if copyErr != nil {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("release: downloading %s: connection lost after %d bytes: %w", b.Asset, have+n, copyErr))
	}
	if meta.Size > 0 && have+n != meta.Size {
		if have+n > meta.Size {
			os.Remove(part)
			return failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: %s: server sent more than %d bytes", b.Asset, meta.Size))
		}
		return failure.Kinded(failure.ErrIO, fmt.Errorf("release: downloading %s: connection closed at %d of %d bytes", b.Asset, have+n, meta.Size))
	}
	return nil
}

func parseContentRange(s string) (start, total int64, ok bool) {
	// "bytes 100-199/200"
	s = strings.TrimPrefix(s, "bytes ")
	rng, tot, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, false
	}
	a, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	total, err2 := strconv.ParseInt(tot, 10, 64)
	return start, total, err1 == nil && err2 == nil
}

// positionTask reports a download's position in the file to a progress task that only counts up: a
// resume continues from the bytes already on disk without counting them twice, a restart from zero
// reports nothing until it passes what was shown, and nothing beyond total is ever reported.
type positionTask struct {
	t          progress.Task
	pos, shown int64
	total      int64
}

func (p *positionTask) setPos(n int64) {
	p.pos = n
	show := n
	if p.total > 0 && show > p.total {
		show = p.total
	}
	if show > p.shown {
		p.t.Add(show - p.shown)
		p.shown = show
	}
}

// Add implements progress.Task.
func (p *positionTask) Add(n int64) { p.setPos(p.pos + n) }

// Done implements progress.Task.
func (p *positionTask) Done(err error) { p.t.Done(err) }

// fileMatches hashes path and compares with c.
func fileMatches(path string, c Checksum) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var h hash.Hash
	if h, err = c.NewHash(); err != nil {
		return false, err
	}
	if _, err := io.Copy(h, f); err != nil {
		return false, err
	}
	return c.Matches(h.Sum(nil)), nil
}

// contentLength asks the server for a file's size with HEAD (0 when it does not say).
func contentLength(ctx context.Context, c *http.Client, url string) int64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return 0
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength < 0 {
		return 0
	}
	return resp.ContentLength
}
