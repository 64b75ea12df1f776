//go:build linux || darwin || freebsd

package tree

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// hostMeta fills owner, device, hard-link identity and xattrs from the host.
func hostMeta(host string, st fs.FileInfo, m *Meta) error {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		m.UID, m.GID = sys.Uid, sys.Gid
		if st.Mode()&fs.ModeDevice != 0 {
			m.Rdev = uint64(sys.Rdev)
		}
		if st.Mode().IsRegular() && sys.Nlink > 1 {
			m.Link = uint64(sys.Ino)
		}
	}
	names, err := listXattrs(host)
	if err != nil || len(names) == 0 {
		return nil // no xattr support on this filesystem: nothing to read
	}
	m.Xattrs = map[string][]byte{}
	for _, n := range names {
		sz, err := unix.Lgetxattr(host, n, nil)
		if err != nil || sz < 0 {
			continue
		}
		buf := make([]byte, sz)
		sz, err = unix.Lgetxattr(host, n, buf)
		if err != nil {
			continue
		}
		m.Xattrs[n] = buf[:sz]
	}
	return nil
}

func listXattrs(host string) ([]string, error) {
	sz, err := unix.Llistxattr(host, nil)
	if err != nil || sz <= 0 {
		return nil, err
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(host, buf)
	if err != nil {
		return nil, err
	}
	var names []string
	start := 0
	for i := 0; i < sz; i++ {
		if buf[i] == 0 {
			if i > start {
				names = append(names, string(buf[start:i]))
			}
			start = i + 1
		}
	}
	return names, nil
}
