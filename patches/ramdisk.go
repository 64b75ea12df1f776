package patches

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image/bootimg"
	"github.com/romforge/romforge/image/cpio"
	"github.com/romforge/romforge/internal/failure"
)

// RamdiskSuffix ends the partition name of a boot image's ramdisk in a Target ("boot-ramdisk",
// "vendor_boot-vendor_ramdisk00"): its files live at the device's root (/init.rc), not under /<name>.
const RamdiskSuffix = "ramdisk"

// IsRamdisk reports whether a target partition name is a ramdisk's.
func IsRamdisk(part string) bool {
	_, sec, ok := strings.Cut(part, "-")
	return ok && strings.Contains(sec, RamdiskSuffix)
}

// MountPoint is where a target partition's files appear on the device: "/" for ramdisks, "/<name>"
// for the rest (so /system/bin/x is system/bin/x and a ramdisk's /sbin/x is boot-ramdisk/sbin/x).
func MountPoint(part string) string {
	if IsRamdisk(part) {
		return "/"
	}
	return "/" + part
}

// BootRamdisk is one ramdisk of a boot, init_boot or vendor_boot image, open for auditing and editing.
type BootRamdisk struct {
	// Name is the target partition name ("boot-ramdisk"); Section the file name `boot unpack` writes.
	Name, Section string
	Ramdisk       *cpio.Ramdisk
	Tree          *tree.Mem
}

// ReadBootRamdisks parses a boot image's ramdisks (boot: "ramdisk"; vendor_boot v3: "vendor_ramdisk";
// v4: one per table entry). image names the partition ("boot", "vendor_boot"). Ramdisks compressed in a
// way the cpio package cannot read are skipped and named in the returned notes.
func ReadBootRamdisks(ra io.ReaderAt, size int64, image string) ([]*BootRamdisk, []string, error) {
	im, err := bootimg.Parse(ra, size)
	if err != nil {
		return nil, nil, err
	}
	type sec struct {
		name string
		r    *io.SectionReader
	}
	var secs []sec
	if r := im.Open(bootimg.SecRamdisk); r != nil {
		secs = append(secs, sec{bootimg.SecRamdisk, r})
	}
	if n := len(im.Header.VendorRamdisks); n > 0 {
		for i := 0; i < n; i++ {
			secs = append(secs, sec{fmt.Sprintf("%s%02d", bootimg.SecVendorRamdisk, i), im.VendorRamdisk(i)})
		}
	} else if r := im.Open(bootimg.SecVendorRamdisk); r != nil {
		secs = append(secs, sec{bootimg.SecVendorRamdisk, r})
	}
	var out []*BootRamdisk
	var notes []string
	for _, s := range secs {
		if s.r == nil || s.r.Size() == 0 {
			continue
		}
		if s.r.Size() > cpio.MaxRamdiskSize {
			return nil, nil, failure.Kinded(failure.ErrInvalid, fmt.Errorf("%s %s: %d bytes is larger than any ramdisk (limit %d)", image, s.name, s.r.Size(), cpio.MaxRamdiskSize))
		}
		b := make([]byte, s.r.Size())
		if _, err := s.r.ReadAt(b, 0); err != nil && err != io.EOF {
			return nil, nil, fmt.Errorf("%s %s: %w", image, s.name, err)
		}
		rd, err := cpio.ParseRamdisk(b)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s %s: %v (not audited)", image, s.name, err))
			continue
		}
		t, err := ramdiskTree(rd)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s: %w", image, s.name, err)
		}
		name := image + "-" + s.name
		if s.name == bootimg.SecRamdisk {
			name = image + "-" + RamdiskSuffix
		}
		out = append(out, &BootRamdisk{Name: name, Section: s.name, Ramdisk: rd, Tree: t})
	}
	return out, notes, nil
}

// ramdiskTree copies a ramdisk's entries into a tree (ramdisks are small; their files have no SELinux
// labels: the policy labels rootfs at boot).
func ramdiskTree(rd *cpio.Ramdisk) (*tree.Mem, error) {
	t := tree.NewMem()
	var ents []*cpio.Entry
	for _, e := range rd.Entries {
		if e.IsTrailer() {
			continue
		}
		ents = append(ents, e)
	}
	// Parents first, whatever the archive's order.
	sort.SliceStable(ents, func(i, j int) bool {
		return strings.Count(clean(ents[i].Name), "/") < strings.Count(clean(ents[j].Name), "/")
	})
	for _, e := range ents {
		name := clean(e.Name)
		if name == "." || name == "" {
			continue
		}
		m := tree.Meta{Mode: tree.FileMode(e.Mode), UID: e.UID, GID: e.GID, ModTime: time.Unix(int64(e.Mtime), 0).UTC()}
		var data []byte
		switch {
		case e.IsSymlink():
			m.Target = string(e.Data)
		case e.IsRegular():
			b, err := rd.ReadFile(e.Name)
			if err != nil {
				return nil, err
			}
			data = b
		case !e.IsDir():
			m.Rdev = tree.Mkdev(e.RdevMajor, e.RdevMinor)
		}
		if err := t.MkdirAll(path.Dir(name), tree.Meta{Mode: fs.ModeDir | 0o755}); err != nil {
			return nil, err
		}
		if err := t.Put(name, m, data); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func clean(name string) string {
	c := path.Clean("/" + strings.TrimLeft(name, "/"))
	return strings.TrimPrefix(c, "/")
}

// ApplyToRamdisk writes what an overlay of a ramdisk tree changed back into the archive: removed entries
// are removed, edited and added regular files and directories are written; every untouched entry stays
// byte-identical. It reports whether anything changed.
func ApplyToRamdisk(rd *cpio.Ramdisk, o *tree.Overlay) (bool, error) {
	seen := map[string]bool{}
	var paths []string
	for _, c := range o.Changes() {
		if !seen[c.Path] {
			seen[c.Path] = true
			paths = append(paths, c.Path)
		}
	}
	sort.Slice(paths, func(i, j int) bool { return strings.Count(paths[i], "/") < strings.Count(paths[j], "/") })
	changed := false
	for _, p := range paths {
		m, err := o.Meta(p)
		if err != nil {
			if rd.Lookup(p) != nil {
				if err := rd.Remove(p); err != nil {
					return changed, err
				}
				changed = true
			}
			continue
		}
		switch {
		case m.Mode.IsDir():
			if rd.Lookup(p) == nil {
				if err := rd.AddDir(p, uint32(m.Mode.Perm()), m.UID, m.GID); err != nil {
					return changed, err
				}
				changed = true
			}
		case m.Mode.IsRegular():
			f, err := o.Open(p)
			if err != nil {
				return changed, err
			}
			b, err := io.ReadAll(io.LimitReader(f, cpio.MaxRamdiskSize))
			f.Close()
			if err != nil {
				return changed, err
			}
			if rd.Lookup(p) != nil {
				if old, err := rd.ReadFile(p); err == nil && string(old) == string(b) {
					continue
				}
				err = rd.Replace(p, b)
			} else {
				err = rd.AddFile(p, b, uint32(m.Mode.Perm()), m.UID, m.GID)
			}
			if err != nil {
				return changed, err
			}
			changed = true
		default:
			return changed, fmt.Errorf("ramdisk: %s: only files and directories can be written back", p)
		}
	}
	return changed, nil
}
