package fetch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/romforge/romforge/devices"
	"github.com/romforge/romforge/internal/failure"
)

// maxJSON bounds a builds listing (real ones are a few KB; the LineageOS API's longest some 100 KB).
const maxJSON = 16 << 20

func readCapped(r io.Reader, limit int64, name string) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("release: %s: %w", name, err))
	}
	if int64(len(body)) > limit {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: %s: listing larger than %d bytes; is the source URL right?", name, limit))
	}
	return body, nil
}

// jsonFile is one downloadable file in a builds JSON. Field names cover the LineageOS API
// (filename, url, sha256, sha1, size), the LineageOS Updater's OTA JSON (id, romtype, datetime) and
// crDroid's (download, timestamp, md5, sha256, buildtype).
type jsonFile struct {
	Filename string          `json:"filename"`
	URL      string          `json:"url"`
	Download string          `json:"download"`
	SHA256   string          `json:"sha256"`
	SHA1     string          `json:"sha1"`
	MD5      string          `json:"md5"`
	Size     json.RawMessage `json:"size"`
}

type jsonBuild struct {
	jsonFile
	Datetime  json.RawMessage `json:"datetime"`
	Timestamp json.RawMessage `json:"timestamp"`
	Date      string          `json:"date"`
	Version   string          `json:"version"`
	Type      string          `json:"type"`
	RomType   string          `json:"romtype"`
	BuildType string          `json:"buildtype"`
	Files     []jsonFile      `json:"files"`
}

// num reads a JSON number or a numeric string; anything else (or a negative value) is 0.
func num(raw json.RawMessage) int64 {
	var n int64
	if json.Unmarshal(raw, &n) != nil {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			n, _ = strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		}
	}
	if n < 0 {
		return 0
	}
	return n
}

var hexOnly = regexp.MustCompile(`^[0-9a-fA-F]+$`)

// jsonChecksum picks the strongest well-formed digest a file entry carries.
func jsonChecksum(f jsonFile, kind string) Checksum {
	for _, c := range []struct{ algo, v string }{{"sha256", f.SHA256}, {"sha1", f.SHA1}, {"md5", f.MD5}} {
		v := strings.TrimSpace(c.v)
		if v != "" && hexOnly.MatchString(v) && algoForLen(len(v)) == c.algo {
			return Checksum{Algo: c.algo, Value: strings.ToLower(v), Kind: kind}
		}
	}
	return Checksum{Kind: kind}
}

// fileOf turns a JSON file entry into a File; ok is false when it has no usable http(s) URL.
func fileOf(f jsonFile, kind string) (File, bool) {
	u := f.URL
	if u == "" {
		u = f.Download
	}
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
		return File{}, false
	}
	name := strings.TrimSpace(f.Filename)
	if name == "" {
		// SourceForge links end in /download after the file name.
		p := strings.TrimSuffix(pu.Path, "/download")
		name = path.Base(p)
	}
	if name == "" || name == "." || name == "/" {
		return File{}, false
	}
	// The parsed form: a scheme written "httpS:" is still https, and is said so in plans and logs.
	return File{Name: name, URL: pu.String(), Size: num(f.Size), Checksum: jsonChecksum(f, kind)}, true
}

// mainFile picks the flashable package among a build's files: the first .zip, else the first file.
func mainFile(files []File) int {
	for i, f := range files {
		if strings.HasSuffix(strings.ToLower(f.Name), ".zip") {
			return i
		}
	}
	return 0
}

// parseBuildsJSON reads a builds listing: a bare array or {"response": [...]}, each entry either one
// file (Updater/crDroid shape) or a build with a files array (LineageOS API v2). kind names where the
// checksums come from ("api", "json"). Builds come out newest first.
func parseBuildsJSON(body []byte, src devices.Source, kind string) ([]Build, error) {
	var entries []jsonBuild
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &entries); err != nil {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: %s: not a builds list: %w", src.Name, err))
		}
	} else {
		var wrapped struct {
			Response *[]jsonBuild `json:"response"`
		}
		if err := json.Unmarshal(trimmed, &wrapped); err != nil || wrapped.Response == nil {
			if err == nil {
				err = fmt.Errorf(`no "response" array`)
			}
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: %s: not a builds list (want [...] or {\"response\": [...]}): %w", src.Name, err))
		}
		entries = *wrapped.Response
	}
	var out []Build
	for _, e := range entries {
		raw := e.Files
		if len(raw) == 0 {
			raw = []jsonFile{e.jsonFile}
		}
		var files []File
		for _, f := range raw {
			if ff, ok := fileOf(f, kind); ok {
				files = append(files, ff)
			}
		}
		if len(files) == 0 {
			continue
		}
		m := mainFile(files)
		main := files[m]
		extras := append(append([]File(nil), files[:m]...), files[m+1:]...)
		ts := num(e.Datetime)
		if ts == 0 {
			ts = num(e.Timestamp)
		}
		date := time.Unix(ts, 0).UTC()
		if ts == 0 {
			date, _ = time.Parse("2006-01-02", e.Date)
		}
		typ := e.Type
		for _, t := range []string{e.RomType, e.BuildType} {
			if typ == "" {
				typ = t
			}
		}
		out = append(out, Build{
			Source: src.Name, Family: src.Family, Version: e.Version, Type: strings.ToLower(typ), Date: date,
			Asset: main.Name, Size: main.Size, URL: main.URL, Checksum: main.Checksum, Files: extras,
		})
	}
	if len(out) == 0 && len(entries) > 0 {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("release: %s: %d entries but none with a file name and an http(s) URL", src.Name, len(entries)))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Date.After(out[j].Date) })
	return out, nil
}

// filterTag keeps the builds whose version or file name is opt.Tag (all when it is empty).
func filterTag(bs []Build, opt ListOptions) []Build {
	if opt.Tag == "" {
		return bs
	}
	var out []Build
	for _, b := range bs {
		if b.Version == opt.Tag || b.Asset == opt.Tag || b.Tag == opt.Tag {
			out = append(out, b)
		}
	}
	return out
}

// redactURL drops a URL's query (signed links) and user info for messages.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	p.RawQuery, p.User = "", nil
	return p.String()
}
