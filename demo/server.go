// Package demo runs romforge's whole job with no network and no phone: it makes a sample community ROM
// release, serves it from an in-process GitHub-shaped release server (fetched through the real go-github
// client), builds a hardened bundle, and flashes it to the in-process fastboot emulator.
package demo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Asset is one release file.
type Asset struct {
	Name string
	Data []byte
}

// Release is one GitHub release.
type Release struct {
	Tag       string
	Name      string
	Body      string
	Published time.Time
	Assets    []Asset
}

// ReleaseServer serves GitHub's REST shape for one repository on a loopback port: the release list
// (paginated 1 per page, with Link headers, to exercise pagination), release by tag, and asset
// downloads via a redirect to a storage path with Range support — what go-github and the downloader meet
// on github.com.
type ReleaseServer struct {
	URL  string
	repo string
	srv  *http.Server
	ln   net.Listener
	mu   sync.Mutex
	rels []Release
}

// StartReleaseServer listens on 127.0.0.1 (a free port) and serves releases for repo ("owner/name").
// Each asset gets a NAME.sha256sum sidecar.
func StartReleaseServer(repo string, rels []Release) (*ReleaseServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &ReleaseServer{URL: "http://" + ln.Addr().String(), repo: repo, ln: ln}
	for _, r := range rels {
		var withSums []Asset
		for _, a := range r.Assets {
			sum := sha256.Sum256(a.Data)
			withSums = append(withSums, a, Asset{Name: a.Name + ".sha256sum", Data: []byte(hex.EncodeToString(sum[:]) + "  " + a.Name + "\n")})
		}
		r.Assets = withSums
		s.rels = append(s.rels, r)
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server.
func (s *ReleaseServer) Close() error { return s.srv.Close() }

func (s *ReleaseServer) release(i int) map[string]any {
	r := s.rels[i]
	var assets []any
	for j, a := range r.Assets {
		assets = append(assets, map[string]any{
			"id": i*100 + j + 1, "name": a.Name, "size": len(a.Data), "content_type": "application/zip",
			"browser_download_url": fmt.Sprintf("%s/%s/releases/download/%s/%s", s.URL, s.repo, r.Tag, a.Name),
		})
	}
	return map[string]any{"id": i + 1, "tag_name": r.Tag, "name": r.Name, "body": r.Body, "draft": false,
		"prerelease": false, "published_at": r.Published.UTC().Format(time.RFC3339), "assets": assets}
}

func (s *ReleaseServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := r.URL.Path
	switch {
	case p == "/repos/"+s.repo+"/releases":
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if page < 1 {
			page = 1
		}
		var out []any
		if page <= len(s.rels) {
			out = append(out, s.release(page-1))
		}
		if page < len(s.rels) {
			w.Header().Set("Link", fmt.Sprintf(`<%s/repos/%s/releases?page=%d>; rel="next"`, s.URL, s.repo, page+1))
		}
		if out == nil {
			out = []any{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	case strings.HasPrefix(p, "/repos/"+s.repo+"/releases/tags/"):
		tag := strings.TrimPrefix(p, "/repos/"+s.repo+"/releases/tags/")
		for i, rel := range s.rels {
			if rel.Tag == tag {
				json.NewEncoder(w).Encode(s.release(i))
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found"}`)
	case strings.HasPrefix(p, "/"+s.repo+"/releases/download/"):
		// github.com answers asset URLs with a redirect to storage.
		http.Redirect(w, r, "/storage"+strings.TrimPrefix(p, "/"+s.repo+"/releases/download"), http.StatusFound)
	case strings.HasPrefix(p, "/storage/"):
		rest := strings.TrimPrefix(p, "/storage/")
		tag, name, _ := strings.Cut(rest, "/")
		for _, rel := range s.rels {
			if rel.Tag != tag {
				continue
			}
			for _, a := range rel.Assets {
				if a.Name == name {
					sum := sha256.Sum256(a.Data)
					w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
					http.ServeContent(w, r, a.Name, rel.Published, strings.NewReader(string(a.Data)))
					return
				}
			}
		}
		http.NotFound(w, r)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found"}`)
	}
}
