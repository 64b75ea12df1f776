package demo

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/fetch"
)

// The demo server is driven by the real go-github client and the real downloader.
func TestReleaseServerWithGoGitHub(t *testing.T) {
	s, err := StartReleaseServer("demo/roms", []Release{
		{Tag: "v2", Name: "two", Published: time.Unix(1700000000, 0), Assets: []Asset{{Name: "lineage-2-armani.zip", Data: []byte("two")}}},
		{Tag: "v1", Name: "one", Published: time.Unix(1600000000, 0), Assets: []Asset{{Name: "lineage-1-armani.zip", Data: []byte("one")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g, err := fetch.NewGitHub(devices.Source{Name: "demo", Kind: "github", Repo: "demo/roms", Asset: `^lineage-.*-armani\.zip$`, Checksum: "sidecar", Family: "lineageos"}, fetch.GitHubOptions{API: s.URL})
	if err != nil {
		t.Fatal(err)
	}
	builds, err := g.List(context.Background(), fetch.ListOptions{})
	if err != nil || len(builds) != 2 || builds[1].Tag != "v1" {
		t.Fatalf("%+v %v", builds, err)
	}
	p, err := fetch.Download(context.Background(), builds[0], fetch.DownloadOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("downloaded %q", b)
	}
}
