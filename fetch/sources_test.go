package fetch

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/progress"
)

func serveFile(t *testing.T, path string) *httptest.Server {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func otaSource(t *testing.T, u string) *OTAJSON {
	t.Helper()
	o, err := NewOTAJSON(devices.Source{Name: "crdroid", Kind: "ota-json", URL: u, Checksum: "json", Family: "crdroid"}, NewHTTPClient(noSleep), GitHubOptions{Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestRecordedShapes reads the recorded listings (testdata/README.md) as the sources serve them.
func TestRecordedShapes(t *testing.T) {
	ctx := context.Background()
	b, err := otaSource(t, serveFile(t, "testdata/crdroid-alioth.json").URL).List(ctx, ListOptions{})
	if err != nil || len(b) != 1 {
		t.Fatalf("crdroid alioth: %+v %v", b, err)
	}
	got := b[0]
	if got.Asset != "crDroidAndroid-16.0-20250905-alioth-v12.0.zip" || got.Version != "12.0" || got.Type != "monthly" ||
		got.Size != 1597024363 || got.Checksum.Algo != "sha256" || got.Checksum.Weak() ||
		got.Checksum.Value != "368525365e29db37e8d2a52796a41aa5de18b5698192685d22c75f0c60e6ebad" ||
		!strings.HasSuffix(got.URL, ".zip/download") || !got.Date.Equal(time.Unix(1757059154, 0)) || got.Family != "crdroid" {
		t.Fatalf("crdroid alioth: %+v", got)
	}

	b, err = otaSource(t, serveFile(t, "testdata/crdroid-whyred-11.0.json").URL).List(ctx, ListOptions{})
	if err != nil || len(b) != 1 || b[0].Checksum.Algo != "md5" || !b[0].Checksum.Weak() || b[0].Checksum.Value != "4b420247ee8230b2bc73a84a92c4bf7d" {
		t.Fatalf("crdroid whyred (md5 only): %+v %v", b, err)
	}

	b, err = otaSource(t, serveFile(t, "testdata/updater-readme.json").URL).List(ctx, ListOptions{})
	if err != nil || len(b) != 1 || b[0].Version != "15.1" || b[0].Type != "nightly" || b[0].Size != 314572800 || b[0].Checksum.Value != "" || b[0].Checksum.Kind != "json" {
		t.Fatalf("updater shape: %+v %v", b, err)
	}

	l := NewLineage(devices.Source{Name: "lineage", Kind: "lineage-api", URL: serveFile(t, "testdata/lineage-api-alioth.json").URL, Family: "lineageos", Checksum: "api"}, NewHTTPClient(noSleep))
	b, err = l.List(ctx, ListOptions{})
	if err != nil || len(b) != 2 {
		t.Fatalf("lineage api: want 2 builds (extra images belong to their build), got %d: %v", len(b), err)
	}
	if b[0].Asset != "lineage-22.1-20250113-nightly-alioth-signed.zip" || len(b[0].Files) != 3 || b[0].Files[0].Name != "boot.img" ||
		b[0].Files[2].Name != "vendor_boot.img" || b[0].Checksum.Algo != "sha256" || b[1].Date.After(b[0].Date) || len(b[1].Files) != 1 {
		t.Fatalf("lineage api: %+v", b)
	}
	if b, _ := l.List(ctx, ListOptions{Tag: "lineage-22.1-20250106-nightly-alioth-signed.zip"}); len(b) != 1 || b[0].Date.Day() != 6 {
		t.Fatalf("tag filter: %+v", b)
	}
}

func TestBuildsJSONRejects(t *testing.T) {
	src := devices.Source{Name: "x"}
	for _, body := range []string{``, `{}`, `{"response": 3}`, `"str"`, `[{"filename":"a.zip","url":"file:///etc/passwd"}]`,
		`[{"filename":"a.zip","url":"javascript:alert(1)"}]`, `{"response":[{"filename":"a.zip"}]}`} {
		if b, err := parseBuildsJSON([]byte(body), src, "json"); err == nil || !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%q: accepted: %+v %v", body, b, err)
		}
	}
	// An empty list is an answer, not an error.
	if b, err := parseBuildsJSON([]byte(`{"response":[]}`), src, "json"); err != nil || len(b) != 0 {
		t.Errorf("empty list: %+v %v", b, err)
	}
	// Malformed digests are not trusted; negative sizes are unknown.
	b, err := parseBuildsJSON([]byte(`[{"filename":"a.zip","url":"https://h/a.zip","sha256":"zz","md5":"abc","size":-5}]`), src, "json")
	if err != nil || b[0].Checksum.Value != "" || b[0].Size != 0 {
		t.Errorf("malformed fields: %+v %v", b, err)
	}
}

// TestBuildsJSONRandom checks properties over random listings: every usable entry becomes exactly one
// build, every build has a name and an http(s) URL, extras never include the main file.
func TestBuildsJSONRandom(t *testing.T) {
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	for iter := 0; iter < 300; iter++ {
		var entries []map[string]any
		usable := 0
		for i := r.Intn(6); i > 0; i-- {
			nfiles := r.Intn(4)
			mk := func() (map[string]any, bool) {
				f := map[string]any{}
				ok := true
				switch r.Intn(4) {
				case 0:
					f["url"] = "https://m.example/" + strconv.Itoa(r.Int())
				case 1:
					f["download"] = "http://sf.example/p/files/r" + strconv.Itoa(r.Int()) + ".zip/download"
				case 2:
					f["url"] = "ftp://x/y"
					ok = false
				default:
					ok = false
				}
				if r.Intn(3) > 0 {
					f["filename"] = []string{"rom.zip", "boot.img", "dtbo.img", "x.zip"}[r.Intn(4)]
				} else if f["download"] == nil {
					delete(f, "filename")
					if f["url"] != nil && ok {
						f["url"] = f["url"].(string) + "/file.zip"
					}
				}
				switch r.Intn(4) {
				case 0:
					f["size"] = r.Int63()
				case 1:
					f["size"] = strconv.Itoa(r.Intn(1000))
				case 2:
					f["size"] = -r.Int63n(100)
				}
				if r.Intn(2) == 0 {
					f["sha256"] = fmt.Sprintf("%064x", r.Int63())
				}
				return f, ok
			}
			e := map[string]any{"version": strconv.Itoa(r.Intn(30)), "datetime": r.Int63n(2e9)}
			if nfiles == 0 {
				f, ok := mk()
				for k, v := range f {
					e[k] = v
				}
				if ok {
					usable++
				}
			} else {
				var files []any
				any := false
				for j := 0; j < nfiles; j++ {
					f, ok := mk()
					files = append(files, f)
					any = any || ok
				}
				e["files"] = files
				if any {
					usable++
				}
			}
			entries = append(entries, e)
		}
		var body []byte
		if r.Intn(2) == 0 {
			body, _ = json.Marshal(entries)
		} else {
			body, _ = json.Marshal(map[string]any{"response": entries})
		}
		bs, err := parseBuildsJSON(body, devices.Source{Name: "r"}, "json")
		if usable == 0 {
			if len(entries) > 0 && err == nil {
				t.Fatalf("no usable entry but no error: %s", body)
			}
			continue
		}
		if err != nil || len(bs) != usable {
			t.Fatalf("%d usable entries, %d builds (%v): %s", usable, len(bs), err, body)
		}
		for i, b := range bs {
			if b.Asset == "" || !(strings.HasPrefix(b.URL, "https://") || strings.HasPrefix(b.URL, "http://")) || b.Size < 0 {
				t.Fatalf("bad build %+v from %s", b, body)
			}
			if i > 0 && bs[i-1].Date.Before(b.Date) {
				t.Fatalf("not newest first: %s", body)
			}
			for _, f := range b.Files {
				if f.URL == b.URL {
					t.Fatalf("main file repeated in extras: %s", body)
				}
			}
		}
	}
}

func FuzzBuildsJSON(f *testing.F) {
	for _, p := range []string{"testdata/crdroid-alioth.json", "testdata/crdroid-whyred-11.0.json", "testdata/updater-readme.json", "testdata/lineage-api-alioth.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		bs, err := parseBuildsJSON(body, devices.Source{Name: "f"}, "json")
		if err != nil {
			return
		}
		for _, b := range bs {
			if b.Asset == "" || b.Size < 0 || !(strings.HasPrefix(b.URL, "http://") || strings.HasPrefix(b.URL, "https://")) {
				t.Fatalf("bad build %+v", b)
			}
		}
	})
}

// mirror is a download host that answers Range requests and can cut a response mid-body.
type mirror struct {
	srv       *httptest.Server
	data      []byte
	cuts      []int // cut the next responses after this many bytes each
	ranges    atomic.Int32
	requests  atomic.Int32
	sawAuth   atomic.Value
	cutsTaken atomic.Int32
}

func newMirror(t *testing.T, data []byte, cuts ...int) *mirror {
	m := &mirror{data: data, cuts: cuts}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := m.requests.Add(1)
		m.sawAuth.Store(r.Header.Get("Authorization"))
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Type", "application/zip")
		start := 0
		if rg := r.Header.Get("Range"); rg != "" {
			m.ranges.Add(1)
			fmt.Sscanf(rg, "bytes=%d-", &start)
			if start >= len(m.data) {
				w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
				return
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(m.data)-1, len(m.data)))
			w.Header().Set("Content-Length", strconv.Itoa(len(m.data)-start))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(m.data)))
		}
		body := m.data[start:]
		if i := int(n) - 1; i < len(m.cuts) && m.cuts[i] < len(body) {
			m.cutsTaken.Add(1)
			w.Write(body[:m.cuts[i]])
			if hj, ok := w.(http.Hijacker); ok {
				conn, _, _ := hj.Hijack()
				conn.Close()
			}
			return
		}
		w.Write(body)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

// TestOTAJSONDownloadRedirectResume: a crDroid-shaped listing whose download link is a
// SourceForge-style /download URL redirecting to a mirror on another host; the transfer is cut twice,
// resumes with Range, is verified against the listing's sha256, and progress never passes the total.
func TestOTAJSONDownloadRedirectResume(t *testing.T) {
	rom := bytes.Repeat([]byte("crdroid-rom-"), 40000)
	m := newMirror(t, rom, 100000, 150000)
	var sf *httptest.Server
	sf = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/alioth.json":
			json.NewEncoder(w).Encode(map[string]any{"response": []any{map[string]any{
				"maintainer": "m", "filename": "crDroidAndroid-16.0-20250905-alioth-v12.0.zip",
				"download":  sf.URL + "/projects/crdroid/files/alioth/12.x/crDroidAndroid-16.0-20250905-alioth-v12.0.zip/download",
				"timestamp": 1757059154, "md5": "00000000000000000000000000000000", "sha256": sum256(rom), "size": len(rom),
				"version": "12.0", "buildtype": "Monthly"}}})
		case "/projects/crdroid/files/alioth/12.x/crDroidAndroid-16.0-20250905-alioth-v12.0.zip/download":
			http.Redirect(w, r, m.srv.URL+"/mirror/crdroid/alioth.zip?r=&ts=1", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer sf.Close()
	builds, err := otaSource(t, sf.URL+"/alioth.json").List(context.Background(), ListOptions{})
	if err != nil || len(builds) != 1 || builds[0].Checksum.Algo != "sha256" {
		t.Fatalf("%+v %v", builds, err)
	}
	rec := &progress.Recorder{}
	dir := t.TempDir()
	p, err := Download(context.Background(), builds[0], DownloadOptions{Dir: dir, HTTP: NewHTTPClient(noSleep), Sleep: noSleep, Progress: rec})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, rom) {
		t.Fatal("downloaded bytes differ")
	}
	if m.cutsTaken.Load() != 2 || m.ranges.Load() != 2 {
		t.Fatalf("cuts %d, range requests %d; want 2 and 2", m.cutsTaken.Load(), m.ranges.Load())
	}
	checkProgress(t, rec, int64(len(rom)))
}

// checkProgress: the running total never exceeds the announced total and ends exactly at it.
func checkProgress(t *testing.T, rec *progress.Recorder, total int64) {
	t.Helper()
	var sum, announced int64
	for _, e := range rec.Events() {
		switch e.Kind {
		case "start":
			announced = e.Total
		case "add":
			if e.N < 0 {
				t.Fatalf("negative add %d", e.N)
			}
			sum += e.N
			if announced > 0 && sum > announced {
				t.Fatalf("progress %d passed the total %d", sum, announced)
			}
		}
	}
	if sum != total || announced != total {
		t.Fatalf("progress ended at %d of %d (announced %d)", sum, total, announced)
	}
}

// TestResumeProgressRandom cuts transfers at random points (resuming each time) and restarts some
// from zero; progress must stay within the total and end at it, and the file must verify.
func TestResumeProgressRandom(t *testing.T) {
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	for iter := 0; iter < 8; iter++ {
		rom := make([]byte, 50000+r.Intn(200000))
		r.Read(rom)
		var cuts []int
		for i := r.Intn(4); i > 0; i-- {
			cuts = append(cuts, 1+r.Intn(len(rom)/2))
		}
		m := newMirror(t, rom, cuts...)
		dir := t.TempDir()
		name := "rom.zip"
		if r.Intn(3) == 0 {
			// A stale .part from an earlier run of another file version: no metadata, so it restarts.
			os.WriteFile(dir+"/"+name+".part", rom[:r.Intn(len(rom))], 0o644)
		}
		b := Build{Source: "t", Asset: name, URL: m.srv.URL + "/rom.zip", Size: int64(len(rom)), Checksum: Checksum{Algo: "sha256", Value: sum256(rom), Kind: "json"}}
		rec := &progress.Recorder{}
		p, err := Download(context.Background(), b, DownloadOptions{Dir: dir, HTTP: NewHTTPClient(noSleep), Sleep: noSleep, Progress: rec})
		if err != nil {
			t.Fatalf("cuts %v: %v", cuts, err)
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, rom) {
			t.Fatalf("cuts %v: bytes differ", cuts)
		}
		checkProgress(t, rec, int64(len(rom)))
	}
}

func TestPositionTaskNeverPassesTotal(t *testing.T) {
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	for iter := 0; iter < 1000; iter++ {
		rec := &progress.Recorder{}
		total := int64(1 + r.Intn(1000))
		p := &positionTask{t: rec.Task("x", total), total: total}
		for i := r.Intn(20); i > 0; i-- {
			if r.Intn(3) == 0 {
				p.setPos(r.Int63n(total + 50))
			} else {
				p.Add(r.Int63n(100))
			}
		}
		if s := rec.Total("x"); s > total || s < 0 {
			t.Fatalf("reported %d of %d", s, total)
		}
	}
}

func TestDownloadRefusesWebPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<html>choose a mirror</html>")
	}))
	defer srv.Close()
	b := Build{Asset: "rom.zip", URL: srv.URL + "/rom.zip/download", Checksum: Checksum{Algo: "sha256", Value: strings.Repeat("a", 64)}}
	_, err := Download(context.Background(), b, DownloadOptions{Dir: t.TempDir(), HTTP: NewHTTPClient(noSleep), Sleep: noSleep})
	if err == nil || !strings.Contains(err.Error(), "web page") || !errors.Is(err, failure.ErrIO) {
		t.Fatalf("got %v", err)
	}
}

// TestOTAJSONFromGitHub reads owner/repo/path@ref through the contents API (base64 content).
func TestOTAJSONFromGitHub(t *testing.T) {
	rec, _ := os.ReadFile("testdata/crdroid-alioth.json")
	var sawRef, sawAuth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/repos/crdroidandroid/android_vendor_crDroidOTA/contents/alioth.json" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"Not Found"}`)
			return
		}
		sawRef.Store(r.URL.Query().Get("ref"))
		sawAuth.Store(r.Header.Get("Authorization"))
		json.NewEncoder(w).Encode(map[string]any{"type": "file", "name": "alioth.json", "path": "alioth.json", "size": len(rec),
			"encoding": "base64", "content": base64.StdEncoding.EncodeToString(rec)})
	}))
	defer srv.Close()
	src, ok, err := ParseSpec("ota-json:crdroidandroid/android_vendor_crDroidOTA/alioth.json@16.0")
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	o, err := NewOTAJSON(src, NewHTTPClient(noSleep), GitHubOptions{API: srv.URL, Token: "ghp_SECRET", Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	b, err := o.List(context.Background(), ListOptions{})
	if err != nil || len(b) != 1 || b[0].Version != "12.0" || sawRef.Load() != "16.0" || !strings.Contains(sawAuth.Load().(string), "ghp_SECRET") {
		t.Fatalf("%+v %v ref=%v", b, err, sawRef.Load())
	}
	src.Path = "missing.json"
	o, _ = NewOTAJSON(src, NewHTTPClient(noSleep), GitHubOptions{API: srv.URL, Token: "ghp_SECRET", Sleep: noSleep})
	if _, err := o.List(context.Background(), ListOptions{}); err == nil || !errors.Is(err, failure.ErrIO) || strings.Contains(err.Error(), "ghp_SECRET") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestParseSpec(t *testing.T) {
	cases := []struct {
		in          string
		ok, wantErr bool
		kind, repo  string
	}{
		{"lineage", false, false, "", ""},
		{"github:dev/roms", true, false, "github", "dev/roms"},
		{"github:dev/roms:^lineage-.*\\.zip$", true, false, "github", "dev/roms"},
		{"github:dev", true, true, "", ""},
		{"github:dev/roms:(", true, true, "", ""},
		{"ota-json:https://raw.example/alioth.json", true, false, "ota-json", ""},
		{"ota-json:ftp://x/y.json", true, true, "", ""},
		{"ota-json:o/r/dir/f.json@main", true, false, "ota-json", "o/r"},
		{"ota-json:o/r", true, true, "", ""},
		{"ota-json:o/r/../x.json", true, true, "", ""},
	}
	for _, c := range cases {
		s, ok, err := ParseSpec(c.in)
		if ok != c.ok || (err != nil) != c.wantErr {
			t.Errorf("%q: ok %v err %v", c.in, ok, err)
			continue
		}
		if err != nil && !errors.Is(err, failure.ErrUsage) {
			t.Errorf("%q: error without usage kind: %v", c.in, err)
		}
		if ok && err == nil && (s.Kind != c.kind || s.Repo != c.repo || s.Origin != "command line") {
			t.Errorf("%q: %+v", c.in, s)
		}
	}
}

type fakeSource struct {
	name   string
	builds []Build
	err    error
}

func (f fakeSource) Name() string { return f.name }
func (f fakeSource) List(context.Context, ListOptions) ([]Build, error) {
	return f.builds, f.err
}

func TestListAllAndFirst(t *testing.T) {
	ctx := context.Background()
	down := fakeSource{name: "down", err: failure.Kinded(failure.ErrIO, errors.New("HTTP 503"))}
	up := fakeSource{name: "up", builds: []Build{{Source: "up", Asset: "a.zip"}}}
	b, failed, err := ListAll(ctx, []Source{down, up}, ListOptions{})
	if err != nil || len(b) != 1 || len(failed) != 1 || failed[0].Source != "down" {
		t.Fatalf("one down: %+v %+v %v", b, failed, err)
	}
	_, failed, err = ListAll(ctx, []Source{down, down}, ListOptions{})
	if err == nil || !errors.Is(err, failure.ErrIO) || len(failed) != 2 {
		t.Fatalf("all down: %v", err)
	}
	// An empty answer is an answer.
	if _, _, err := ListAll(ctx, []Source{fakeSource{name: "empty"}}, ListOptions{}); err != nil {
		t.Fatal(err)
	}

	var tried []string
	get := func(_ context.Context, b Build) (string, error) {
		tried = append(tried, b.Source)
		if b.Source == "bad" {
			return "", failure.Kinded(failure.ErrInvalid, ErrChecksum)
		}
		return "/x/" + b.Asset, nil
	}
	bad := fakeSource{name: "bad", builds: []Build{{Source: "bad", Asset: "b.zip"}}}
	p, served, skipped, err := First(ctx, []Source{down, fakeSource{name: "empty"}, bad, up}, ListOptions{}, get)
	if err != nil || served.Source != "up" || p != "/x/a.zip" || len(skipped) != 3 || strings.Join(tried, ",") != "bad,up" {
		t.Fatalf("fallback: %q %+v %+v %v %v", p, served, skipped, err, tried)
	}
	_, _, _, err = First(ctx, []Source{down, bad}, ListOptions{}, get)
	if err == nil || !errors.Is(err, failure.ErrInvalid) || !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "down") {
		t.Fatalf("all failed: %v", err)
	}
}
