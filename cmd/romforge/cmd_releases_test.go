package main

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// rehost sends every request, whatever its host, to one local server (the Host header keeps the
// original name), so the catalog's real source URLs can be replayed offline.
type rehost struct {
	target *url.URL
	base   http.RoundTripper
}

func (r rehost) RoundTrip(req *http.Request) (*http.Response, error) {
	c := req.Clone(req.Context())
	c.Host = req.URL.Host
	c.URL.Scheme, c.URL.Host = r.target.Scheme, r.target.Host
	return r.base.RoundTrip(c)
}

func replayEverything(t *testing.T, h http.Handler) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	old := http.DefaultTransport
	http.DefaultTransport = rehost{target: u, base: old}
	t.Cleanup(func() { http.DefaultTransport = old })
}

// TestReleasesAliothBothSources replays the recorded crDroid OTA JSON (through GitHub's contents API,
// as the catalog reads it) and the LineageOS API answer for alioth: both are listed; with one source
// down the other is still listed with a warning (exit 0); with both down, exit 5.
func TestReleasesAliothBothSources(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	crd, err := os.ReadFile("../../fetch/testdata/crdroid-alioth.json")
	if err != nil {
		t.Fatal(err)
	}
	lin, err := os.ReadFile("../../fetch/testdata/lineage-api-alioth.json")
	if err != nil {
		t.Fatal(err)
	}
	var lineageDown, crdroidDown atomic.Bool
	var sawAuth atomic.Value
	sawAuth.Store("")
	replayEverything(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Host == "download.lineageos.org" && r.URL.Path == "/api/v2/devices/alioth/builds":
			if lineageDown.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Write(lin)
		case r.Host == "api.github.com" && r.URL.Path == "/repos/crdroidandroid/android_vendor_crDroidOTA/contents/alioth.json":
			sawAuth.Store(r.Header.Get("Authorization"))
			if crdroidDown.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"type": "file", "name": "alioth.json", "path": "alioth.json", "size": len(crd),
				"encoding": "base64", "content": base64.StdEncoding.EncodeToString(crd)})
		default:
			http.NotFound(w, r)
		}
	}))
	code, out, errs := runCLI(t, "releases", "--device", "poco f3", "--json", "--token", "ghp_TOPSECRET")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	var builds []struct {
		Source, Asset string
		Files         []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(out), &builds); err != nil {
		t.Fatal(err)
	}
	if len(builds) != 3 || builds[0].Source != "lineage" || len(builds[0].Files) != 3 || builds[2].Source != "crdroid" ||
		builds[2].Asset != "crDroidAndroid-16.0-20250905-alioth-v12.0.zip" {
		t.Fatalf("want 2 lineage builds (extra images inside) and 1 crDroid build, got %s", out)
	}
	if !strings.Contains(sawAuth.Load().(string), "ghp_TOPSECRET") || strings.Contains(out+errs, "TOPSECRET") {
		t.Fatal("token not sent to the API, or printed")
	}

	lineageDown.Store(true)
	code, out, errs = runCLI(t, "releases", "--device", "alioth")
	if code != 0 || !strings.Contains(out, "crDroidAndroid-16.0-20250905-alioth-v12.0.zip") || strings.Contains(out, "lineage-22.1") ||
		!strings.Contains(errs, "warning: source lineage did not answer") {
		t.Fatalf("lineage down: exit %d\n%s\n%s", code, out, errs)
	}
	// Each unreachable source costs the HTTP client's retries (about 2 s).
	if !testing.Short() {
		lineageDown.Store(false)
		crdroidDown.Store(true)
		code, out, errs = runCLI(t, "releases", "--device", "alioth")
		if code != 0 || !strings.Contains(out, "lineage-22.1-20250113-nightly-alioth-signed.zip") || strings.Contains(out, "crDroidAndroid") ||
			!strings.Contains(errs, "warning: source crdroid did not answer") {
			t.Fatalf("crdroid down: exit %d\n%s\n%s", code, out, errs)
		}
	}
	lineageDown.Store(true)
	crdroidDown.Store(true)
	code, out, errs = runCLI(t, "releases", "--device", "alioth", "--json")
	if code != exitIO || !strings.Contains(out, `"exit_code":5`) {
		t.Fatalf("both down: exit %d\n%s\n%s", code, out, errs)
	}
}

// sourceForge serves an OTA JSON whose download link is a SourceForge-style /download URL that
// redirects to a mirror; the mirror drops the first transfer after cut bytes and honours Range.
type sourceForge struct {
	srv         *httptest.Server
	rom         []byte
	cut         atomic.Int64
	ranges      atomic.Int32
	mirrorHits  atomic.Int32
	listingHits atomic.Int32
}

func newSourceForge(t *testing.T, rom []byte, entry func(sf *sourceForge) map[string]any) *sourceForge {
	sf := &sourceForge{rom: rom}
	sf.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/ota/mydev.json":
			sf.listingHits.Add(1)
			json.NewEncoder(w).Encode(map[string]any{"response": []any{entry(sf)}})
		case strings.HasSuffix(r.URL.Path, ".zip/download"):
			http.Redirect(w, r, sf.srv.URL+"/mirror/"+strings.TrimSuffix(filepath.Base(strings.TrimSuffix(r.URL.Path, "/download")), "")+"?viasf=1", http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/mirror/"):
			sf.mirrorHits.Add(1)
			w.Header().Set("Content-Type", "application/zip")
			w.Header().Set("ETag", `"rom1"`)
			start := 0
			if rg := r.Header.Get("Range"); rg != "" {
				sf.ranges.Add(1)
				fmt.Sscanf(rg, "bytes=%d-", &start)
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(rom)-1, len(rom)))
				w.Header().Set("Content-Length", strconv.Itoa(len(rom)-start))
				w.WriteHeader(http.StatusPartialContent)
			} else {
				w.Header().Set("Content-Length", strconv.Itoa(len(rom)))
			}
			body := rom[start:]
			if c := sf.cut.Swap(0); c > 0 && int(c) < len(body) {
				w.Write(body[:c])
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
				return
			}
			w.Write(body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(sf.srv.Close)
	return sf
}

// TestFetchOTAJSONSource: fetch --source ota-json:URL follows the redirect to the mirror, resumes
// after the cut, verifies the JSON's sha256, says which source served; a second fetch is cached.
func TestFetchOTAJSONSource(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	rom := bytes.Repeat([]byte("a community rom "), 30000)
	sum := sha256.Sum256(rom)
	sf := newSourceForge(t, rom, func(sf *sourceForge) map[string]any {
		return map[string]any{"filename": "crDroidAndroid-16.0-20250905-mydev-v12.0.zip",
			"download":  sf.srv.URL + "/projects/crdroid/files/mydev/12.x/crDroidAndroid-16.0-20250905-mydev-v12.0.zip/download",
			"timestamp": 1757059154, "md5": "00112233445566778899aabbccddeeff", "sha256": hex.EncodeToString(sum[:]), "size": len(rom),
			"version": "12.0", "buildtype": "Monthly"}
	})
	sf.cut.Store(100000)
	dir := t.TempDir()
	src := "ota-json:" + sf.srv.URL + "/ota/mydev.json"
	code, out, errs := runCLI(t, "fetch", "--source", src, "-o", dir, "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	var res struct {
		Path     string
		Source   string
		Checksum struct{ Algo, Value string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err, out)
	}
	got, _ := os.ReadFile(res.Path)
	if !bytes.Equal(got, rom) || res.Checksum.Algo != "sha256" || res.Source != "ota-json:"+sf.srv.URL+"/ota/mydev.json" {
		t.Fatalf("%+v", res)
	}
	if sf.ranges.Load() != 1 || sf.mirrorHits.Load() != 2 {
		t.Fatalf("want one cut transfer resumed with one Range request, got %d requests, %d ranges", sf.mirrorHits.Load(), sf.ranges.Load())
	}
	if !strings.Contains(errs, "served by source ota-json:") {
		t.Fatalf("does not say which source served: %s", errs)
	}
	// Cached: the listing is read again, the mirror is not.
	if code, _, errs := runCLI(t, "fetch", "--source", src, "-o", dir); code != 0 || sf.mirrorHits.Load() != 2 {
		t.Fatalf("second fetch: exit %d, mirror hits %d: %s", code, sf.mirrorHits.Load(), errs)
	}
}

// TestFetchFallsBackAndUserCatalog: a user catalog device with two sources, the first down; fetch
// is served by the second and says so; md5-only listings warn; devices marks the entry's origin.
func TestFetchFallsBackAndUserCatalog(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	rom := []byte("bytes of a build published with md5 only")
	sum := fmt.Sprintf("%x", md5sum(rom))
	sf := newSourceForge(t, rom, func(sf *sourceForge) map[string]any {
		return map[string]any{"filename": "rom-mydev.zip", "url": sf.srv.URL + "/mirror/rom-mydev.zip", "datetime": 1700000000,
			"md5": sum, "size": len(rom), "version": "7.10", "romtype": "weekly"}
	})
	udir := filepath.Join(cfg, "romforge", "devices")
	os.MkdirAll(udir, 0o755)
	dev := fmt.Sprintf(`codename: mydev
vendor: Acme
names: ["Acme One"]
soc: test
products: [mydev]
partitions:
  - {name: boot, size: 1024, fs: raw}
sources:
  - {name: gone, kind: ota-json, url: "%s/ota/missing.json", family: custom}
  - {name: works, kind: ota-json, url: "%s/ota/mydev.json", family: custom}
`, sf.srv.URL, sf.srv.URL)
	if err := os.WriteFile(filepath.Join(udir, "mydev.yaml"), []byte(dev), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(udir, "alioth.yaml"), []byte("codename: alioth\nsources:\n  - {name: mine, kind: github, repo: me/alioth, asset: '\\.zip$', checksum: auto, family: custom}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	code, out, errs := runCLI(t, "fetch", "--device", "acme one", "-o", dir)
	if code != 0 || strings.TrimSpace(out) != filepath.Join(dir, "rom-mydev.zip") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "source gone did not serve") || !strings.Contains(errs, "served by source works") || !strings.Contains(errs, "md5 only") {
		t.Fatalf("messages: %s", errs)
	}
	code, out, _ = runCLI(t, "devices")
	if code != 0 || !regexpLine(out, `^mydev\s.*\suser$`) || !regexpLine(out, `^alioth\s.*\sbuiltin\+user$`) || !regexpLine(out, `^miatoll\s.*\sbuiltin$`) {
		t.Fatalf("devices origin column:\n%s", out)
	}
	code, out, _ = runCLI(t, "devices", "show", "alioth")
	if code != 0 || !strings.Contains(out, "mine: github me/alioth") || !strings.Contains(out, "[from "+filepath.Join(udir, "alioth.yaml")+"]") {
		t.Fatalf("devices show:\n%s", out)
	}
	// A broken user file is reported as such (exit 4), not ignored.
	os.WriteFile(filepath.Join(udir, "broken.yaml"), []byte("codename: broken\nvendr: x\n"), 0o644)
	if code, _, errs := runCLI(t, "devices"); code != exitInvalid || !strings.Contains(errs, "user catalog") {
		t.Fatalf("broken user file: exit %d %s", code, errs)
	}
}

func md5sum(b []byte) [16]byte { return md5.Sum(b) }

func regexpLine(text, re string) bool { return regexp.MustCompile(`(?m)` + re).MatchString(text) }
