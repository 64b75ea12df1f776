//go:build linux || darwin || freebsd

package tree

import "golang.org/x/sys/unix"

// oNoFollow makes extraction refuse to open through a symlink planted at the target path.
const oNoFollow = unix.O_NOFOLLOW

func hostMknod(path string, mode uint32, dev uint64) error { return unix.Mknod(path, mode, int(dev)) }

func hostLsetxattr(path, name string, value []byte) error {
	return unix.Lsetxattr(path, name, value, 0)
}
