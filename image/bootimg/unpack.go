package bootimg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/safeio"
)

// HeaderFile is the name of the header description Unpack writes and Repack reads.
const HeaderFile = "header.json"

// TailFile holds the bytes after the last section (AVB footer, partition padding).
const TailFile = "tail"

// manifest is romforge's bookkeeping in header.json (under "romforge"): what was unpacked, so Repack
// can tell edited parts from untouched ones and restore the bytes a header field cannot carry.
type manifest struct {
	Files            map[string]fileSum `json:"files"`
	Padding          map[string]string  `json:"padding,omitempty"`
	ShortPadding     int64              `json:"short_padding,omitempty"`
	Tail             *tailInfo          `json:"tail,omitempty"`
	RawTable         string             `json:"raw_vendor_ramdisk_table,omitempty"`
	RawVendorRamdisk bool               `json:"raw_vendor_ramdisk,omitempty"`
	Notes            []string           `json:"notes,omitempty"`
}

type fileSum struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type tailInfo struct {
	File      string `json:"file"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	AVBFooter bool   `json:"avb_footer"`
}

// partFiles are every file name Unpack may write besides vendor_ramdiskNN; Unpack removes stale ones so
// a later Repack cannot pick up a part of some other image.
var partFiles = []string{SecKernel, SecRamdisk, SecSecond, SecDT, SecRecoveryDTBO, SecDTB, SecSignature,
	SecVendorRamdisk, SecBootconfig, TailFile}

// Unpack writes each section of the image to dir (kernel, ramdisk, second, dt, recovery_dtbo, dtb,
// boot_signature, vendor_ramdisk or vendor_ramdiskNN, bootconfig), the bytes after the last section to
// "tail", and header.json with every header field. It returns the names of the files written.
func (im *Image) Unpack(ctx context.Context, dir string) ([]string, error) {
	// Written into a hidden folder beside dir and moved into it (the header last) only when complete: a
	// failed or interrupted unpack leaves no set of parts that looks like a whole image.
	out, err := safeio.CreateDir(dir)
	if err != nil {
		return nil, failure.Kinded(failure.ErrIO, err)
	}
	defer out.Abort()
	files, err := im.unpackTo(ctx, func(name string, r io.Reader, holes bool) (string, int64, error) {
		return writeFile(filepath.Join(out.Path(), name), safeio.ContextReader(ctx, r), holes)
	})
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Parts of an earlier unpack into the same folder that this image does not have must not mix in.
	stale, _ := filepath.Glob(filepath.Join(dir, "vendor_ramdisk[0-9]*"))
	for _, f := range partFiles {
		stale = append(stale, filepath.Join(dir, f))
	}
	for _, f := range stale {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, failure.Kinded(failure.ErrIO, err)
		}
	}
	if err := out.Commit(HeaderFile); err != nil {
		return nil, failure.Kinded(failure.ErrIO, err)
	}
	return files, nil
}

// sink stores one unpacked file and returns the SHA-256 and length of what it stored.
type sink func(name string, r io.Reader, holes bool) (string, int64, error)

func (im *Image) unpackTo(ctx context.Context, store sink) ([]string, error) {
	h := im.Header
	m := manifest{Files: map[string]fileSum{}, ShortPadding: im.Short, Notes: im.Notes, RawVendorRamdisk: im.rawRamdisks}
	var written []string
	write := func(name string, r io.Reader) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		sum, n, err := store(name, r, false)
		if err != nil {
			return err
		}
		m.Files[name] = fileSum{n, sum}
		written = append(written, name)
		return nil
	}
	for _, s := range im.Sections {
		switch {
		case s.Name == SecRamdiskTable:
			continue // described in header.json
		case s.Name == SecVendorRamdisk && h.HeaderVersion >= 4 && !im.rawRamdisks:
			continue // written per entry below
		}
		if err := write(s.Name, im.Open(s.Name)); err != nil {
			return nil, err
		}
	}
	if h.Kind == KindBoot {
		for _, name := range []string{SecKernel, SecRamdisk} {
			if _, ok := m.Files[name]; !ok {
				if err := write(name, bytes.NewReader(nil)); err != nil {
					return nil, err
				}
			}
		}
	}
	for i := range h.VendorRamdisks {
		if err := write(vendorRamdiskFile(i), im.VendorRamdisk(i)); err != nil {
			return nil, err
		}
	}
	if im.rawTable != nil {
		m.RawTable = base64.StdEncoding.EncodeToString(im.rawTable)
	}
	for k, v := range im.padding {
		if m.Padding == nil {
			m.Padding = map[string]string{}
		}
		m.Padding[k] = base64.StdEncoding.EncodeToString(v)
	}
	if t := im.Tail(); t != nil {
		sum, n, err := store(TailFile, t, true)
		if err != nil {
			return nil, err
		}
		m.Tail = &tailInfo{File: TailFile, Size: n, SHA256: sum, AVBFooter: im.HasAVBFooter()}
		written = append(written, TailFile)
	}
	doc := append(h.fields(), kv{"romforge", m})
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	if _, _, err := store(HeaderFile, bytes.NewReader(append(js, '\n')), false); err != nil {
		return nil, err
	}
	return append(written, HeaderFile), nil
}

// writeFile copies r to path and returns the SHA-256 and length of what it wrote. With holes, runs of
// zero bytes become holes (a partition-sized tail is mostly zeros).
func writeFile(path string, r io.Reader, holes bool) (string, int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", 0, failure.Kinded(failure.ErrIO, err)
	}
	sum := sha256.New()
	var n int64
	if holes {
		n, err = copyWithHoles(f, io.TeeReader(r, sum))
	} else {
		n, err = io.Copy(f, io.TeeReader(r, sum))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", 0, fmt.Errorf("bootimg: writing %s: %w", path, err)
	}
	return hex.EncodeToString(sum.Sum(nil)), n, nil
}

func copyWithHoles(f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, 64<<10)
	var n int64
	for {
		m, err := io.ReadFull(r, buf)
		if m > 0 {
			if safeio.AllZero(buf[:m]) {
				if _, serr := f.Seek(int64(m), io.SeekCurrent); serr != nil {
					return n, serr
				}
			} else if _, werr := f.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, f.Truncate(n)
		}
		if err != nil {
			return n, err
		}
	}
}

// Repack rebuilds an image from a directory written by Unpack (possibly with edited parts or header
// fields). When no part changed the result equals the unpacked image byte for byte, id and tail
// included. When a part changed, sizes and offsets are recomputed, the boot v0–v2 id is recomputed the
// way AOSP mkbootimg does, padding after changed parts becomes zero, and a trailing AVB footer (which
// no longer matches) is dropped with a note. Close the Output when done.
func Repack(ctx context.Context, dir string) (*Output, error) {
	data, err := os.ReadFile(filepath.Join(dir, HeaderFile))
	if err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("bootimg: %w (unpack an image into %s first)", err, dir))
	}
	return repackFrom(ctx, dir, data, func(name string) (image.Image, io.Closer, error) {
		f, err := image.OpenFile(filepath.Join(dir, name))
		if err != nil {
			return nil, nil, err
		}
		return f, f, nil
	})
}

// source opens one unpacked file; a missing one gives an error satisfying errors.Is(err, fs.ErrNotExist).
type source func(name string) (image.Image, io.Closer, error)

func repackFrom(ctx context.Context, dir string, data []byte, openFile source) (*Output, error) {
	h := &Header{}
	if err := json.Unmarshal(data, h); err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("bootimg: %s: %w", filepath.Join(dir, HeaderFile), err))
	}
	var doc struct {
		Romforge *manifest `json:"romforge"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("bootimg: %s: %w", filepath.Join(dir, HeaderFile), err))
	}
	m := doc.Romforge
	if m == nil {
		m = &manifest{} // hand-written header.json: everything counts as changed
	}
	if err := checkVersion(h); err != nil {
		return nil, err
	}
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	parts := map[string]image.Image{}
	sums := map[string]string{}
	sizes := map[string]int64{}
	open := func(name string, required bool) (image.Image, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, c, err := openFile(name)
		if errors.Is(err, fs.ErrNotExist) && !required {
			return nil, nil
		}
		if err != nil {
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("bootimg: repack: %w", err))
		}
		closers = append(closers, c)
		sum, err := hashImage(f, sha256.New())
		if err != nil {
			return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("bootimg: reading %s: %w", name, err))
		}
		sums[name], sizes[name] = sum, f.Size()
		return f, nil
	}
	v4vendor := h.Kind == KindVendorBoot && h.HeaderVersion >= 4
	for _, name := range h.sectionNames() {
		if name == SecRamdiskTable || name == SecVendorRamdisk && v4vendor && !m.RawVendorRamdisk {
			continue
		}
		p, err := open(name, false)
		if err != nil {
			closeAll()
			return nil, err
		}
		parts[name] = p
	}
	var entryParts []image.Image
	if v4vendor {
		for i, name := range vendorRamdiskFiles(data) {
			if strings.ContainsAny(name, `/\`) || name == ".." {
				closeAll()
				return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("bootimg: vendor ramdisk %d file %q must be a plain name in %s", i, name, dir))
			}
			p, err := open(name, true)
			if err != nil {
				closeAll()
				return nil, err
			}
			entryParts = append(entryParts, p)
		}
	}
	changed := m.Files == nil
	for name, s := range sums {
		fs, ok := m.Files[name]
		if ok && fs.SHA256 != s || !ok && sizes[name] > 0 {
			changed = true // edited, or a part added
		}
	}
	for name := range m.Files {
		if _, ok := sums[name]; !ok {
			changed = true // a part was deleted
		}
	}
	as := &assembly{h: h, parts: parts}
	var notes []string
	if v4vendor {
		if m.RawVendorRamdisk {
			if changed {
				notes = append(notes, "vendor ramdisk entries overlap or leave gaps; their sizes and offsets are kept from header.json")
			}
		} else if changed {
			parts[SecVendorRamdisk] = ramdiskConcat(h, entryParts)
		} else {
			parts[SecVendorRamdisk] = image.Concat(entryParts...)
		}
		var raw []byte
		if !changed && m.RawTable != "" {
			var err error
			if raw, err = base64.StdEncoding.DecodeString(m.RawTable); err != nil {
				closeAll()
				return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("bootimg: header.json raw_vendor_ramdisk_table: %w", err))
			}
		}
		num, es := h.VendorRamdiskTableEntryNum, h.VendorRamdiskTableEntrySize
		tab, err := encodeTable(h, raw)
		if err != nil {
			closeAll()
			return nil, failure.Kinded(failure.ErrInvalid, err)
		}
		if raw != nil {
			h.VendorRamdiskTableEntryNum, h.VendorRamdiskTableEntrySize = num, es
		}
		parts[SecRamdiskTable] = bytesImage(tab)
	}
	// Header fields that only restate the layout: keep them as read while nothing changed.
	if m.Files == nil {
		fillDefaults(h)
	}
	if changed {
		as.finish = func(h *Header, secs []Section) error {
			if h.Kind == KindBoot && h.HeaderVersion < 3 {
				if h.HeaderVersion >= 1 {
					setRecoveryOffset(h, secs)
				}
				id, err := computeID(h, parts, false)
				h.ID = id
				return err
			}
			return nil
		}
	}
	as.padding = map[string][]byte{}
	for k, v := range m.Padding {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			closeAll()
			return nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("bootimg: header.json padding %s: %w", k, err))
		}
		if fs, ok := m.Files[k]; k == "header" || !changed || ok && fs.SHA256 == sums[k] {
			as.padding[k] = b
		}
	}
	if !changed {
		as.short = m.ShortPadding
	}
	if m.Tail != nil {
		t, err := open(m.Tail.File, false)
		if err != nil {
			closeAll()
			return nil, err
		}
		switch {
		case t == nil:
			notes = append(notes, fmt.Sprintf("%s is missing: the image ends after its last section", m.Tail.File))
		case changed && m.Tail.AVBFooter && sums[m.Tail.File] == m.Tail.SHA256:
			notes = append(notes, "dropped the AVB footer that followed the sections: it no longer matches; add a new one (romforge avb add-hash-footer) and update vbmeta")
		default:
			as.tail = t
		}
	}
	out, err := as.output()
	if err != nil {
		closeAll()
		return nil, failure.Kinded(failure.ErrInvalid, err)
	}
	out.Notes = notes
	out.closers = closers
	return out, nil
}

// copyBuf is a copy buffer for n bytes: io.Copy's 32 KiB for large inputs, less for the small sections
// boot images mostly hold (a buffer per section was most of what a round trip allocated).
func copyBuf(n int64) []byte { return make([]byte, min(max(n, 512), 32<<10)) }

func hashImage(img image.Image, h hash.Hash) (string, error) {
	if _, err := io.CopyBuffer(h, image.Reader(img), copyBuf(img.Size())); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func checkVersion(h *Header) error {
	if h.Kind == KindVendorBoot && h.HeaderVersion != 3 && h.HeaderVersion != 4 ||
		h.Kind == KindBoot && h.HeaderVersion > 4 {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("bootimg: %s header version %d is not supported", h.Kind, h.HeaderVersion))
	}
	if (h.Kind == KindVendorBoot || h.HeaderVersion < 3) && !validPageSize(h.PageSize) {
		return failure.Kinded(failure.ErrInvalid, fmt.Errorf("bootimg: page_size %d is invalid (want a power of two from %d to %d)", h.PageSize, minPageSize, maxPageSize))
	}
	return nil
}

// fillDefaults sets the header_size and table entry size a hand-written header.json may leave out.
func fillDefaults(h *Header) {
	if h.HeaderSize == 0 && (h.Kind == KindVendorBoot || h.HeaderVersion >= 1) {
		h.HeaderSize = uint32(h.headerLen())
	}
}
