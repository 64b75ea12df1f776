package audit

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/romforge/romforge/android/apk"
	"github.com/romforge/romforge/fs/tree"
)

func rules() *Rules {
	return &Rules{
		Packages: map[string]string{"com.xiaomi.xmsf": "MiPush"},
		Hosts:    []string{"api.xmpush.xiaomi.com", "i.mi.com"},
		Domains:  []string{"xiaomi.com", "micloud"},
	}
}

func scanOne(t *testing.T, name string, data []byte) []Finding {
	t.Helper()
	m := tree.NewMem()
	m.MkdirAll("etc", tree.Meta{Mode: 0o755})
	if err := m.Put(name, tree.Meta{Mode: 0o644}, data); err != nil {
		t.Fatal(err)
	}
	res, err := Scan(context.Background(), map[string]tree.Tree{"system": m}, rules(), Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	return res.Findings
}

func matches(fs []Finding) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.Kind+":"+f.Match)
	}
	return strings.Join(s, ",")
}

func TestBoundariesAndChunkEdges(t *testing.T) {
	cases := map[string]string{
		"https://API.XMPUSH.Xiaomi.com/x":      "host:api.xmpush.xiaomi.com",
		"notxiaomi.com and xiaomi.company.com": "",
		"sub.i.mi.com, xi.mi.com":              "host:sub.i.mi.com",
		"a.micloud.xiaomi.net":                 "host:a.micloud.xiaomi.net",
		"/system/bin/micloud micloud_sync":     "",
		"see account.xiaomi.com.":              "host:account.xiaomi.com",
	}
	for in, want := range cases {
		if got := matches(scanOne(t, "f.txt", []byte(in))); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
	// Hosts straddling every chunk edge are found exactly once.
	for _, off := range []int{chunk - 300, chunk - 260, chunk - 256, chunk - 10, chunk - 3, chunk, chunk + 1} {
		b := bytes.Repeat([]byte{'x'}, 3*chunk)
		for i := range b {
			if i%97 == 0 {
				b[i] = ' '
			}
		}
		copy(b[off-1:], " api.xmpush.xiaomi.com ")
		got := scanOne(t, "big.bin", b)
		if matches(got) != "host:api.xmpush.xiaomi.com" {
			t.Errorf("offset %d: %v", off, matches(got))
		}
	}
}

func TestHostsFileOnlyUnblockedLines(t *testing.T) {
	hosts := "127.0.0.1 localhost\n0.0.0.0 api.xmpush.xiaomi.com\n::1 i.mi.com\n10.0.0.1 us.i.mi.com # mirror\n"
	got := scanOne(t, "etc/hosts", []byte(hosts))
	if len(got) != 1 || got[0].Match != "us.i.mi.com" || !strings.Contains(got[0].Detail, "10.0.0.1") {
		t.Fatalf("findings %+v", got)
	}
}

func TestArchives(t *testing.T) {
	inner := apk.Build("com.example.plugin", "", map[string][]byte{"classes.dex": []byte("dex\n035\x00https://i.mi.com/x")})
	outer := apk.Build("com.xiaomi.xmsf", "", map[string][]byte{"assets/plugin.apk": inner, "lib/arm64-v8a/libx.so": []byte("\x7fELF api.xmpush.xiaomi.com")})
	got := scanOne(t, "app.apk", outer)
	want := map[string]bool{"package:com.xiaomi.xmsf": false, "host:api.xmpush.xiaomi.com": false, "host:i.mi.com": false}
	for _, f := range got {
		k := f.Kind + ":" + f.Match
		if _, ok := want[k]; ok {
			want[k] = true
		}
		if f.Match == "i.mi.com" && f.Inner != "assets/plugin.apk!classes.dex" {
			t.Errorf("nested inner path %q", f.Inner)
		}
	}
	for k, ok := range want {
		if !ok {
			t.Errorf("missing %s in %v", k, matches(got))
		}
	}
	// A corrupt zip is reported as unreadable, not skipped silently.
	m := tree.NewMem()
	m.Put("bad.apk", tree.Meta{Mode: 0o644}, append([]byte("PK\x03\x04"), bytes.Repeat([]byte{1}, 100)...))
	res, err := Scan(context.Background(), map[string]tree.Tree{"system": m}, rules(), Options{})
	if err != nil || len(res.Unreadable) != 1 {
		t.Fatalf("unreadable = %v, %v", res.Unreadable, err)
	}
}

func FuzzArchive(f *testing.F) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("classes.dex")
	w.Write([]byte("https://api.xmpush.xiaomi.com"))
	zw.Close()
	f.Add(buf.Bytes())
	f.Add(apk.Build("com.xiaomi.xmsf", "", nil))
	s := &scanner{m: newMatcher([]pattern{{text: "xiaomi.com", domain: true}, {text: "micloud"}}), rules: rules()}
	f.Fuzz(func(t *testing.T, b []byte) {
		s.archive(Finding{Path: "x.apk"}, bytes.NewReader(b), int64(len(b)), 0)
		s.stream(Finding{Path: "x"}, bytes.NewReader(b))
	})
}

// Pooled inflaters are reset between entries: every entry of a zip with many deflated entries, some of
// them corrupt, is read whole and on its own.
func TestInflaterReuse(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	want := map[string]bool{}
	for i := range 24 {
		name := fmt.Sprintf("classes%d.dex", i)
		if i%7 == 3 {
			// Not a deflate stream: reading it fails; what follows must still be found.
			w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, CompressedSize64: 64, UncompressedSize64: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(bytes.Repeat([]byte{0xff}, 64))
			continue
		}
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		host := fmt.Sprintf("h%d.xiaomi.com", i)
		body := bytes.Repeat([]byte(fmt.Sprintf("Lcom/example/C%d; ", i)), (i+1)*4000)
		at := len(body) * i / 24
		w.Write(body[:at])
		w.Write([]byte(" https://" + host + "/x "))
		w.Write(body[at:])
		want[host+"@"+name] = true
	}
	zw.Close()
	got := map[string]bool{}
	for _, f := range scanOne(t, "framework.jar", buf.Bytes()) {
		got[f.Match+"@"+f.Inner] = true
	}
	for k := range want {
		if !got[k] {
			t.Errorf("missing %s", k)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d findings, want %d: %v", len(got), len(want), got)
	}
}

func TestMergeAndPartitions(t *testing.T) {
	r := &Result{Findings: []Finding{{Partition: "vendor", Path: "b", Kind: "host", Match: "x"}, {Partition: "system", Path: "a", Kind: "package", Match: "y"}},
		Unreadable: []string{"system/app/A.apk: bad zip", "vendor/app/B.apk: bad zip"}, Files: 10, Bytes: 100}
	v := r.Partitions("vendor")
	if len(v.Findings) != 1 || v.Findings[0].Partition != "vendor" || len(v.Unreadable) != 1 || v.Unreadable[0] != "vendor/app/B.apk: bad zip" {
		t.Fatalf("Partitions(vendor) = %+v", v)
	}
	s := &Result{Findings: []Finding{{Partition: "system", Path: "c", Kind: "host", Match: "z"}}, Files: 3, Bytes: 7}
	m := Merge(s, v, nil)
	if len(m.Findings) != 2 || m.Findings[0].Partition != "system" || m.Findings[1].Partition != "vendor" || m.Files != 3 || m.Bytes != 7 {
		t.Fatalf("Merge = %+v", m)
	}
	if Merge().Findings == nil {
		t.Fatal("an empty merge must still have a (JSON []) findings list")
	}
}
