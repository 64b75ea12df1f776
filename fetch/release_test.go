package fetch

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/internal/failure"
)

func noSleep(context.Context, time.Duration) error { return nil }

// fakeGitHub serves GitHub-API-shaped releases and asset bytes with Range support.
type fakeGitHub struct {
	srv        *httptest.Server
	storage    *httptest.Server
	assets     map[string][]byte
	etag       map[string]string
	cutAfter   atomic.Int64 // cut the next asset response after this many bytes (0: never)
	rateLimit  atomic.Int32 // answer the next N API calls with a 403 rate limit
	fail5xx    atomic.Int32 // answer the next N API calls with 502
	sawAuthAPI atomic.Value
	sawAuthDL  atomic.Value
	hits       atomic.Int32
}

func sum256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func newFake(t *testing.T) *fakeGitHub {
	f := &fakeGitHub{assets: map[string][]byte{}, etag: map[string]string{}}
	rom := bytes.Repeat([]byte("lineage-rom-bytes-"), 50000) // ~900 KB
	f.assets["lineage-21.0-20240101-UNOFFICIAL-lavender.zip"] = rom
	f.assets["lineage-21.0-20240101-UNOFFICIAL-lavender.zip.sha256sum"] = []byte(sum256(rom) + "  lineage-21.0-20240101-UNOFFICIAL-lavender.zip\n")
	f.assets["lineage-20.0-20230101-UNOFFICIAL-lavender.zip"] = []byte("older build")
	f.assets["lineage-22.0-20241201-UNOFFICIAL-lavender.zip"] = []byte("pre-release build")
	for k, v := range f.assets {
		f.etag[k] = `"` + sum256(v)[:16] + `"`
	}
	f.storage = httptest.NewServer(http.HandlerFunc(f.serveAsset))
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveAPI))
	t.Cleanup(func() { f.srv.Close(); f.storage.Close() })
	return f
}

func (f *fakeGitHub) asset(id int, name string) map[string]any {
	return map[string]any{"id": id, "name": name, "size": len(f.assets[name]),
		"browser_download_url": f.srv.URL + "/download/" + name}
}

func (f *fakeGitHub) serveAPI(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	f.sawAuthAPI.Store(r.Header.Get("Authorization"))
	if strings.HasPrefix(r.URL.Path, "/download/") {
		// GitHub redirects asset downloads to storage on another host.
		http.Redirect(w, r, f.storage.URL+"/store/"+strings.TrimPrefix(r.URL.Path, "/download/")+"?sig=secret", http.StatusFound)
		return
	}
	if f.rateLimit.Load() > 0 {
		f.rateLimit.Add(-1)
		w.Header().Set("X-RateLimit-Limit", "60")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(10*time.Minute).Unix(), 10))
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"message":"API rate limit exceeded"}`)
		return
	}
	if f.fail5xx.Load() > 0 {
		f.fail5xx.Add(-1)
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	rels := []map[string]any{
		{"tag_name": "v22", "name": "LineageOS 22 beta", "prerelease": true, "published_at": "2024-12-01T00:00:00Z",
			"assets": []any{f.asset(3, "lineage-22.0-20241201-UNOFFICIAL-lavender.zip")}},
		{"tag_name": "v21", "name": "LineageOS 21", "published_at": "2024-01-01T00:00:00Z", "body": "Changelog\n",
			"assets": []any{f.asset(1, "lineage-21.0-20240101-UNOFFICIAL-lavender.zip"), f.asset(2, "lineage-21.0-20240101-UNOFFICIAL-lavender.zip.sha256sum")}},
		{"tag_name": "draft", "draft": true, "assets": []any{f.asset(9, "lineage-21.0-20240101-UNOFFICIAL-lavender.zip")}},
		{"tag_name": "v20", "name": "LineageOS 20", "published_at": "2023-01-01T00:00:00Z",
			"body":   "sha256: " + sum256(f.assets["lineage-20.0-20230101-UNOFFICIAL-lavender.zip"]),
			"assets": []any{f.asset(4, "lineage-20.0-20230101-UNOFFICIAL-lavender.zip")}},
	}
	switch {
	case r.URL.Path == "/repos/dev/roms/releases":
		page := r.URL.Query().Get("page")
		if page == "" || page == "1" {
			w.Header().Set("Link", fmt.Sprintf(`<%s/repos/dev/roms/releases?page=2>; rel="next"`, f.srv.URL))
			json.NewEncoder(w).Encode(rels[:2])
		} else {
			json.NewEncoder(w).Encode(rels[2:])
		}
	case r.URL.Path == "/repos/dev/roms/releases/tags/v21":
		json.NewEncoder(w).Encode(rels[1])
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found"}`)
	}
}

func (f *fakeGitHub) serveAsset(w http.ResponseWriter, r *http.Request) {
	f.sawAuthDL.Store(r.Header.Get("Authorization"))
	name := strings.TrimPrefix(r.URL.Path, "/store/")
	data, ok := f.assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", f.etag[name])
	start := 0
	if rg := r.Header.Get("Range"); rg != "" && (r.Header.Get("If-Range") == "" || r.Header.Get("If-Range") == f.etag[name]) {
		fmt.Sscanf(rg, "bytes=%d-", &start)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
		w.Header().Set("Content-Length", strconv.Itoa(len(data)-start))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	}
	body := data[start:]
	if cut := f.cutAfter.Swap(0); cut > 0 && int(cut) < len(body) {
		w.Write(body[:cut])
		// Drop the connection mid-body.
		if hj, ok := w.(http.Hijacker); ok {
			conn, _, _ := hj.Hijack()
			conn.Close()
		}
		return
	}
	w.Write(body)
}

func (f *fakeGitHub) source(checksum string) *GitHub {
	g, err := NewGitHub(devices.Source{Name: "gh", Kind: "github", Repo: "dev/roms", Asset: `^lineage-.*-UNOFFICIAL-lavender\.zip$`, Checksum: checksum, Family: "lineageos"},
		GitHubOptions{API: f.srv.URL, Token: "ghp_SECRETTOKEN", HTTP: NewHTTPClient(noSleep), Sleep: noSleep})
	if err != nil {
		panic(err)
	}
	return g
}

func TestGitHubList(t *testing.T) {
	f := newFake(t)
	builds, err := f.source("sidecar").List(context.Background(), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range builds {
		names = append(names, b.Tag+":"+b.Asset)
	}
	if got := strings.Join(names, ","); got != "v21:lineage-21.0-20240101-UNOFFICIAL-lavender.zip,v20:lineage-20.0-20230101-UNOFFICIAL-lavender.zip" {
		t.Fatalf("builds = %s (drafts and pre-releases must be skipped, pages followed)", got)
	}
	if f.sawAuthAPI.Load() != "Bearer ghp_SECRETTOKEN" {
		t.Fatalf("API auth header %v", f.sawAuthAPI.Load())
	}
	pre, _ := f.source("sidecar").List(context.Background(), ListOptions{Pre: true})
	if len(pre) != 3 {
		t.Fatalf("with pre: %d builds", len(pre))
	}
	tag, err := f.source("body").List(context.Background(), ListOptions{Tag: "v21"})
	if err != nil || len(tag) != 1 || tag[0].Checksum.Value != "" {
		t.Fatalf("tag v21 with body checksums: %+v %v", tag, err)
	}
	body, _ := f.source("body").List(context.Background(), ListOptions{})
	if body[1].Checksum.Algo != "sha256" || body[1].Checksum.Kind != "body" {
		t.Fatalf("body checksum: %+v", body[1].Checksum)
	}
}

func TestRateLimitAndRetries(t *testing.T) {
	f := newFake(t)
	f.rateLimit.Store(1)
	_, err := f.source("sidecar").List(context.Background(), ListOptions{})
	if err == nil || !strings.Contains(err.Error(), "rate limit") || !strings.Contains(err.Error(), "resets at") || !errors.Is(err, failure.ErrIO) {
		t.Fatalf("rate limit error: %v", err)
	}
	if strings.Contains(err.Error(), "SECRETTOKEN") {
		t.Fatal("token in error message")
	}
	f2 := newFake(t)
	f2.rateLimit.Store(1)
	g := f2.source("sidecar")
	g.opt.Wait = true
	var slept time.Duration
	g.opt.Sleep = func(_ context.Context, d time.Duration) error { slept += d; return nil }
	if _, err := g.List(context.Background(), ListOptions{}); err != nil {
		t.Fatalf("--wait: %v", err)
	}
	if slept < 9*time.Minute {
		t.Fatalf("waited only %s for a 10-minute reset", slept)
	}
	f3 := newFake(t)
	f3.fail5xx.Store(2)
	if _, err := f3.source("sidecar").List(context.Background(), ListOptions{}); err != nil {
		t.Fatalf("5xx not retried: %v", err)
	}
}

func TestDownloadResumeVerifyAndCache(t *testing.T) {
	f := newFake(t)
	builds, err := f.source("sidecar").List(context.Background(), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f.cutAfter.Store(300000)
	p, err := Download(context.Background(), builds[0], DownloadOptions{Dir: dir, HTTP: NewHTTPClient(noSleep), Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, f.assets[builds[0].Asset]) {
		t.Fatal("resumed download differs")
	}
	if a := f.sawAuthDL.Load(); a != "" {
		t.Fatalf("token forwarded to asset storage: %q", a)
	}
	if _, err := os.Stat(p + ".part"); !os.IsNotExist(err) {
		t.Fatal(".part left behind")
	}
	// Cached: no request for the asset the second time.
	before := f.hits.Load()
	if _, err := Download(context.Background(), builds[0], DownloadOptions{Dir: dir, HTTP: NewHTTPClient(noSleep), Sleep: noSleep}); err != nil {
		t.Fatal(err)
	}
	if f.hits.Load()-before > 1 { // the sidecar only
		t.Fatalf("cached file downloaded again (%d requests)", f.hits.Load()-before)
	}
}

func TestDownloadChangedFileRestarts(t *testing.T) {
	f := newFake(t)
	builds, _ := f.source("sidecar").List(context.Background(), ListOptions{})
	dir := t.TempDir()
	b := builds[0]
	// A stale part of a different version with the old ETag.
	part := filepath.Join(dir, b.Asset+".part")
	os.WriteFile(part, []byte("OLD VERSION BYTES"), 0o644)
	mb, _ := json.Marshal(partMeta{URL: b.URL, ETag: `"old-etag"`, Size: b.Size})
	os.WriteFile(part+".json", mb, 0o644)
	p, err := Download(context.Background(), b, DownloadOptions{Dir: dir, HTTP: NewHTTPClient(noSleep), Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, f.assets[b.Asset]) {
		t.Fatal("changed file was appended to instead of restarted")
	}
}

func TestDownloadWrongChecksumLeavesNothing(t *testing.T) {
	f := newFake(t)
	builds, _ := f.source("sidecar").List(context.Background(), ListOptions{})
	b := builds[0]
	b.checksumURL = ""
	b.Checksum = Checksum{Algo: "sha256", Value: strings.Repeat("0", 64), Kind: "given"}
	dir := t.TempDir()
	_, err := Download(context.Background(), b, DownloadOptions{Dir: dir, HTTP: NewHTTPClient(noSleep), Sleep: noSleep})
	if !errors.Is(err, ErrChecksum) || !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != ".locks" {
		t.Fatalf("left in cache: %v", ents)
	}
	// No checksum at all is refused unless allowed.
	b.Checksum = Checksum{Kind: "none"}
	if _, err := Download(context.Background(), b, DownloadOptions{Dir: dir, HTTP: NewHTTPClient(noSleep)}); !errors.Is(err, failure.ErrRefused) {
		t.Fatalf("unverified: %v", err)
	}
	if _, err := Download(context.Background(), b, DownloadOptions{Dir: dir, HTTP: NewHTTPClient(noSleep), AllowUnverified: true}); err != nil {
		t.Fatalf("allowed unverified: %v", err)
	}
}

func TestConcurrentDownloads(t *testing.T) {
	f := newFake(t)
	builds, _ := f.source("sidecar").List(context.Background(), ListOptions{})
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = Download(context.Background(), builds[0], DownloadOptions{Dir: dir, HTTP: NewHTTPClient(noSleep)})
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(filepath.Join(dir, builds[0].Asset))
	if !bytes.Equal(got, f.assets[builds[0].Asset]) {
		t.Fatal("concurrent downloads corrupted the file")
	}
}

func TestLineageAPI(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `[{"datetime": 1700000000, "version": "21.0", "type": "nightly",
		  "files": [{"filename": "lineage-21.0-20231114-nightly-lavender-signed.zip", "url": "https://mirror/l.zip", "sha256": "`+strings.Repeat("ab", 32)+`", "size": 1234}]},
		 {"datetime": "1600000000", "version": "20.0", "filename": "lineage-20.0.zip", "url": "https://mirror/o.zip", "id": "x", "size": "99"}]`)
	}))
	defer srv.Close()
	l := NewLineage(devices.Source{Name: "lineage", Kind: "lineage-api", URL: srv.URL, Family: "lineageos", Checksum: "api"}, nil)
	b, err := l.List(context.Background(), ListOptions{})
	if err != nil || len(b) != 2 {
		t.Fatalf("%+v %v", b, err)
	}
	if b[0].Version != "21.0" || b[0].Checksum.Algo != "sha256" || b[0].Size != 1234 || b[1].Size != 99 || b[1].Checksum.Value != "" {
		t.Fatalf("%+v", b)
	}
}

func TestParseChecksums(t *testing.T) {
	h := strings.Repeat("a", 64)
	h1 := strings.Repeat("b", 40)
	cases := []struct {
		text, file, algo, value string
	}{
		{h + "  rom.zip\n", "rom.zip", "sha256", h},
		{"SHA256 (rom.zip) = " + h, "rom.zip", "sha256", h},
		{"**SHA1:** " + h1 + "\nsha256: " + h, "rom.zip", "sha256", h},
		{"other.zip sha256: " + strings.Repeat("c", 64) + "\nrom.zip sha256: " + h, "rom.zip", "sha256", h},
		{"md5: " + strings.Repeat("d", 32), "rom.zip", "md5", strings.Repeat("d", 32)},
		{"nothing here", "rom.zip", "", ""},
	}
	for _, tc := range cases {
		c, ok := ParseChecksums(tc.text, tc.file)
		if c.Algo != tc.algo || c.Value != tc.value || ok != (tc.algo != "") {
			t.Errorf("%q → %+v %v", tc.text, c, ok)
		}
	}
}

func FuzzParseChecksums(f *testing.F) {
	f.Add("sha256: "+strings.Repeat("a", 64), "rom.zip")
	f.Add("SHA1 (rom.zip) = "+strings.Repeat("b", 40), "rom.zip")
	f.Fuzz(func(t *testing.T, text, file string) {
		c, ok := ParseChecksums(text, file)
		if ok && algoForLen(len(c.Value)) != c.Algo {
			t.Fatalf("inconsistent %+v", c)
		}
	})
}

// signapkZip makes a zip with a signapk-style whole-file signature produced by the real openssl.
func signapkZip(t *testing.T, dir string) (string, string) {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	key, cert := filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.pem")
	if out, err := exec.Command(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=romforge test signer").CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v %s", err, out)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("META-INF/com/google/android/updater-script")
	w.Write([]byte("ui_print(\"hi\");\n"))
	zw.Close()
	b := buf.Bytes() // ends with a comment length of 0
	signed := b[:len(b)-2]
	in := filepath.Join(dir, "signed.bin")
	os.WriteFile(in, signed, 0o644)
	sigFile := filepath.Join(dir, "sig.der")
	if out, err := exec.Command(openssl, "cms", "-sign", "-binary", "-noattr", "-nosmimecap", "-md", "sha256", "-outform", "DER",
		"-signer", cert, "-inkey", key, "-in", in, "-out", sigFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl cms: %v %s", err, out)
	}
	sig, _ := os.ReadFile(sigFile)
	comment := append(append([]byte{}, sig...), 0, 0, 0xff, 0xff, 0, 0)
	binary.LittleEndian.PutUint16(comment[len(sig):], uint16(len(sig)+6))
	binary.LittleEndian.PutUint16(comment[len(sig)+4:], uint16(len(comment)))
	out := append(append([]byte{}, signed...), 0, 0)
	binary.LittleEndian.PutUint16(out[len(signed):], uint16(len(comment)))
	out = append(out, comment...)
	p := filepath.Join(dir, "ota.zip")
	os.WriteFile(p, out, 0o644)
	fp, _ := exec.Command(openssl, "x509", "-in", cert, "-noout", "-fingerprint", "-sha256").Output()
	f := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(strings.SplitN(string(fp), "=", 2)[1]), ":", ""))
	return p, f
}

func TestVerifyOTA(t *testing.T) {
	dir := t.TempDir()
	p, fp := signapkZip(t, dir)
	s, err := VerifyOTA(p, []string{fp})
	if err != nil || !s.Valid || !s.Pinned || s.SignerSHA256 != fp || s.TestKey != "" {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := zip.OpenReader(p); err != nil {
		t.Fatalf("signed file is not a valid zip for Go's reader: %v", err)
	}
	b, _ := os.ReadFile(p)
	b[40] ^= 1 // tamper inside the signed region
	os.WriteFile(p, b, 0o644)
	if s, err := VerifyOTA(p, nil); err == nil || s.Valid || !errors.Is(err, failure.ErrInvalid) {
		t.Fatalf("tampered: %+v %v", s, err)
	}
	var plain bytes.Buffer
	zw := zip.NewWriter(&plain)
	zw.Create("x")
	zw.Close()
	os.WriteFile(p, plain.Bytes(), 0o644)
	if _, err := VerifyOTA(p, nil); !errors.Is(err, ErrNoSignature) {
		t.Fatalf("unsigned: %v", err)
	}
}

func FuzzVerifyOTA(f *testing.F) {
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))
	f.Fuzz(func(t *testing.T, b []byte) {
		VerifyOTAReader(bytes.NewReader(b), int64(len(b)), nil)
	})
}
