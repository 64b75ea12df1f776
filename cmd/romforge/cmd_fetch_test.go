package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// fakeReleases serves a GitHub repository (armani-dev/android_releases, a name that exists only here)
// with one release, GitHub-API-shaped; tests reach it with --source github:armani-dev/android_releases.
func fakeReleases(t *testing.T, rom []byte, sidecar string) *httptest.Server {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/repos/armani-dev/android_releases/releases":
			json.NewEncoder(w).Encode([]map[string]any{{
				"tag_name": "14.1-20231114", "name": "LineageOS 14.1", "published_at": "2023-11-14T00:00:00Z",
				"assets": []any{
					map[string]any{"id": 1, "name": "lineage-14.1-20231114-UNOFFICIAL-armani.zip", "size": len(rom), "browser_download_url": srv.URL + "/dl/rom"},
					map[string]any{"id": 2, "name": "lineage-14.1-20231114-UNOFFICIAL-armani.zip.sha256sum", "size": len(sidecar), "browser_download_url": srv.URL + "/dl/sum"},
				},
			}})
		case "/dl/rom":
			w.Write(rom)
		case "/dl/sum":
			fmt.Fprint(w, sidecar)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFetchAndReleases(t *testing.T) {
	rom := []byte("not really a zip, but bytes with a checksum")
	sum := sha256.Sum256(rom)
	srv := fakeReleases(t, rom, hex.EncodeToString(sum[:])+"  lineage-14.1-20231114-UNOFFICIAL-armani.zip\n")
	dir := t.TempDir()
	const src = "github:armani-dev/android_releases:^lineage-.*-UNOFFICIAL-armani\\.zip$"
	code, out, errs := runCLI(t, "releases", "--device", "redmi 1s", "--source", src, "--github-api", srv.URL, "--json", "--token", "ghp_TOPSECRET")
	if code != 0 || !strings.Contains(out, `"asset": "lineage-14.1-20231114-UNOFFICIAL-armani.zip"`) {
		t.Fatalf("releases: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runCLI(t, "fetch", "--device", "armani", "--source", src, "--github-api", srv.URL, "-o", dir, "--verbose", "--token", "ghp_TOPSECRET")
	if code != 0 || strings.TrimSpace(out) != dir+"/lineage-14.1-20231114-UNOFFICIAL-armani.zip" {
		t.Fatalf("fetch: exit %d\n%s\n%s", code, out, errs)
	}
	if strings.Contains(out+errs, "TOPSECRET") {
		t.Fatal("token printed")
	}
	got, _ := os.ReadFile(strings.TrimSpace(out))
	if string(got) != string(rom) {
		t.Fatal("wrong bytes")
	}
	// A wrong checksum: exit 4, nothing left.
	bad := fakeReleases(t, rom, strings.Repeat("0", 64)+"  lineage-14.1-20231114-UNOFFICIAL-armani.zip\n")
	dir2 := t.TempDir()
	code, _, errs = runCLI(t, "fetch", "--source", src, "--github-api", bad.URL, "-o", dir2)
	if code != exitInvalid || !strings.Contains(errs, "checksum mismatch") {
		t.Fatalf("bad checksum: exit %d %s", code, errs)
	}
	// Only the lock folder may remain (fetch keeps its OS file locks there).
	if ents, _ := os.ReadDir(dir2); len(ents) > 1 || len(ents) == 1 && ents[0].Name() != ".locks" {
		t.Fatalf("left behind: %v", ents)
	}
	// Direct URL without a checksum is refused (exit 3) unless allowed.
	code, _, _ = runCLI(t, "fetch", "--url", srv.URL+"/dl/rom", "-o", dir2)
	if code != exitRefused {
		t.Fatalf("unverified url: exit %d", code)
	}
	code, out, errs = runCLI(t, "fetch", "--url", srv.URL+"/dl/rom", "--sha256", hex.EncodeToString(sum[:]), "-o", dir2, "--json")
	if code != 0 || !strings.Contains(out, `"path"`) {
		t.Fatalf("url fetch: exit %d %s %s", code, out, errs)
	}
}
