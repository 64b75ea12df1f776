package apk

import (
	"archive/zip"
	"bytes"
	"sort"
	"time"

	"github.com/romforge/romforge/android/axml"
)

// Build returns a minimal APK (a zip with a binary AndroidManifest.xml plus the given extra entries),
// for tests and the demo's sample ROM. overlayTarget makes it a resource overlay.
func Build(pkg, overlayTarget string, extra map[string][]byte) []byte {
	root := &axml.Element{Name: "manifest", Attrs: []axml.Attr{
		{Namespace: axml.AndroidNS, Name: "versionCode", Value: "1", Resource: 0x0101021b},
		{Name: "package", Value: pkg},
	}}
	root.Children = append(root.Children, &axml.Element{Name: "application", Attrs: []axml.Attr{
		{Namespace: axml.AndroidNS, Name: "label", Value: pkg, Resource: 0x01010001},
	}})
	if overlayTarget != "" {
		root.Children = append(root.Children, &axml.Element{Name: "overlay", Attrs: []axml.Attr{
			{Namespace: axml.AndroidNS, Name: "targetPackage", Value: overlayTarget, Resource: 0x01010021},
		}})
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte) {
		// Fixed times keep generated APKs reproducible.
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Date(2009, 1, 1, 0, 0, 0, 0, time.UTC)})
		w.Write(data)
	}
	add("AndroidManifest.xml", axml.Encode(root))
	names := make([]string, 0, len(extra))
	for n := range extra {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		add(n, extra[n])
	}
	zw.Close()
	return buf.Bytes()
}
