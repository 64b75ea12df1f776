package axml

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

const frameworkRes = "/usr/share/android-framework-res/framework-res.apk"

func sample() *Element {
	return &Element{Name: "manifest", Attrs: []Attr{
		{Namespace: AndroidNS, Name: "versionCode", Value: "42", Resource: 0x0101021b},
		{Namespace: AndroidNS, Name: "versionName", Value: "6.0.1", Resource: 0x0101021c},
		{Name: "package", Value: "com.xiaomi.xmsf"},
	}, Children: []*Element{
		{Name: "application", Attrs: []Attr{{Namespace: AndroidNS, Name: "label", Value: "XMSF ünïcode", Resource: 0x01010001}, {Name: "debuggable", Value: "true"}}},
		{Name: "overlay", Attrs: []Attr{{Namespace: AndroidNS, Name: "targetPackage", Value: "com.miui.cloudservice", Resource: 0x01010021}}},
	}}
}

func TestRoundTrip(t *testing.T) {
	root, err := Decode(Encode(sample()))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := root.Attr("", "package"); v != "com.xiaomi.xmsf" {
		t.Fatalf("package = %q", v)
	}
	if v, _ := root.Attr(AndroidNS, "versionCode"); v != "42" {
		t.Fatalf("versionCode = %q", v)
	}
	app := root.Find("application")
	if v, _ := app.Attr(AndroidNS, "label"); v != "XMSF ünïcode" {
		t.Fatalf("label = %q", v)
	}
	if v, _ := root.Find("overlay").Attr(AndroidNS, "targetPackage"); v != "com.miui.cloudservice" {
		t.Fatalf("overlay target = %q", v)
	}
	if a := root.Attrs[0]; a.Resource != 0x0101021b || a.Type != TypeIntDec || a.Data != 42 {
		t.Fatalf("typed attr %+v", a)
	}
}

// TestAaptReadsOurs: the real aapt decodes what we encode, with the same names and values.
func TestAaptReadsOurs(t *testing.T) {
	aapt := validators.Tool(t, "aapt")
	apkPath := filepath.Join(t.TempDir(), "ours.apk")
	writeZip(t, apkPath, Encode(sample()))
	out, err := exec.Command(aapt, "dump", "xmltree", apkPath, "AndroidManifest.xml").CombinedOutput()
	if err != nil {
		t.Fatalf("aapt: %v\n%s", err, out)
	}
	for _, want := range []string{
		`A: android:versionCode(0x0101021b)=(type 0x10)0x2a`,
		`A: package="com.xiaomi.xmsf"`,
		`A: android:targetPackage(0x01010021)="com.miui.cloudservice"`,
		`A: debuggable=(type 0x12)0xffffffff`,
		`E: overlay`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("aapt output lacks %q:\n%s", want, out)
		}
	}
}

// TestWeReadAapts: a manifest compiled by the real aapt decodes to the same attributes.
func TestWeReadAapts(t *testing.T) {
	aapt := validators.Tool(t, "aapt")
	if _, err := os.Stat(frameworkRes); err != nil {
		t.Skip("android-framework-res not installed (scripts/install-validators.sh)")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "AndroidManifest.xml"), []byte(`<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="com.miui.analytics" android:versionCode="7" android:sharedUserId="android.uid.system">
  <application android:label="Analytics"><service android:name=".AnalyticsService"/></application>
</manifest>`), 0o644)
	apkPath := filepath.Join(dir, "a.apk")
	if out, err := exec.Command(aapt, "package", "-M", filepath.Join(dir, "AndroidManifest.xml"), "-I", frameworkRes, "-F", apkPath).CombinedOutput(); err != nil {
		t.Fatalf("aapt package: %v\n%s", err, out)
	}
	zr, err := zip.OpenReader(apkPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	f, _ := zr.Open("AndroidManifest.xml")
	b, _ := io.ReadAll(f)
	root, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]string{"package": "com.miui.analytics", "versionCode": "7", "sharedUserId": "android.uid.system"}
	for k, want := range checks {
		if v, _ := root.Attr("", k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	svc := root.Find("application").Find("service")
	if v, _ := svc.Attr(AndroidNS, "name"); v != ".AnalyticsService" {
		t.Errorf("service name %q", v)
	}
}

func writeZip(t *testing.T, path string, manifest []byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("AndroidManifest.xml")
	w.Write(manifest)
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestHostile(t *testing.T) {
	good := Encode(sample())
	cases := map[string][]byte{
		"empty":     nil,
		"not xml":   []byte("<manifest/>xxxxxxxxx"),
		"truncated": good[:len(good)/2],
		"huge pool count": func() []byte {
			b := bytes.Clone(good)
			b[8+8] = 0xff
			b[8+9] = 0xff
			b[8+10] = 0xff
			return b
		}(),
	}
	for name, b := range cases {
		_, err := Decode(b)
		if err == nil || !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(sample()))
	f.Add(Encode(&Element{Name: "x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		root, err := Decode(b)
		if err == nil && root == nil {
			t.Fatal("nil root without error")
		}
	})
}
