// Package apk reads what romforge needs from an Android package: the package name and the overlay target
// from its binary AndroidManifest.xml. Decisions about which app a file is never rest on file names.
package apk

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"

	"github.com/romforge/romforge/android/axml"
	"github.com/romforge/romforge/internal/failure"
)

// maxManifest bounds the manifest we are willing to inflate (real ones are tens of KB).
const maxManifest = 8 << 20

// Manifest is the part of AndroidManifest.xml romforge uses.
type Manifest struct {
	Package     string `json:"package"`
	VersionCode string `json:"version_code,omitempty"`
	VersionName string `json:"version_name,omitempty"`
	SharedUser  string `json:"shared_user_id,omitempty"`
	// OverlayTarget is the package a runtime resource overlay targets ("" for ordinary apps).
	OverlayTarget string `json:"overlay_target,omitempty"`
}

// Read parses the manifest of the APK (or APEX) readable from r.
func Read(r io.ReaderAt, size int64) (*Manifest, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("apk: not a zip: %w", err))
	}
	return FromZip(zr)
}

// FromZip parses the manifest of an already opened APK.
func FromZip(zr *zip.Reader) (*Manifest, error) {
	for _, f := range zr.File {
		if f.Name != "AndroidManifest.xml" {
			continue
		}
		if f.UncompressedSize64 > maxManifest {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("apk: manifest claims %d bytes", f.UncompressedSize64))
		}
		rc, err := f.Open()
		if err != nil {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("apk: %w", err))
		}
		b, err := io.ReadAll(io.LimitReader(rc, maxManifest+1))
		rc.Close()
		if err != nil {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("apk: manifest: %w", err))
		}
		if len(b) > maxManifest {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("apk: manifest larger than %d bytes", maxManifest))
		}
		return Parse(b)
	}
	return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("apk: no AndroidManifest.xml"))
}

// Parse reads a binary AndroidManifest.xml (or, as some test and hand-made packages carry, a text one).
func Parse(b []byte) (*Manifest, error) {
	if t := bytes.TrimLeft(b, " \t\r\n\ufeff"); len(t) > 0 && t[0] == '<' {
		return parseText(t)
	}
	root, err := axml.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("apk: manifest: %w", err)
	}
	if root.Name != "manifest" {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("apk: root element is <%s>, not <manifest>", root.Name))
	}
	m := &Manifest{}
	m.Package, _ = root.Attr("", "package")
	m.VersionCode, _ = root.Attr(axml.AndroidNS, "versionCode")
	m.VersionName, _ = root.Attr(axml.AndroidNS, "versionName")
	m.SharedUser, _ = root.Attr(axml.AndroidNS, "sharedUserId")
	if ov := root.Find("overlay"); ov != nil {
		m.OverlayTarget, _ = ov.Attr("", "targetPackage")
	}
	if m.Package == "" {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("apk: manifest has no package attribute"))
	}
	return m, nil
}

// parseText reads a plain-text manifest.
func parseText(b []byte) (*Manifest, error) {
	var doc struct {
		XMLName xml.Name   `xml:"manifest"`
		Attrs   []xml.Attr `xml:",any,attr"`
		Overlay *struct {
			Attrs []xml.Attr `xml:",any,attr"`
		} `xml:"overlay"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("apk: text manifest: %w", err))
	}
	m := &Manifest{}
	for _, a := range doc.Attrs {
		switch a.Name.Local {
		case "package":
			m.Package = a.Value
		case "versionCode":
			m.VersionCode = a.Value
		case "versionName":
			m.VersionName = a.Value
		case "sharedUserId":
			m.SharedUser = a.Value
		}
	}
	if doc.Overlay != nil {
		for _, a := range doc.Overlay.Attrs {
			if a.Name.Local == "targetPackage" {
				m.OverlayTarget = a.Value
			}
		}
	}
	if m.Package == "" {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("apk: manifest has no package attribute"))
	}
	return m, nil
}
