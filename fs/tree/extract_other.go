//go:build !(linux || darwin || freebsd)

package tree

import "errors"

// Without O_NOFOLLOW, O_EXCL still refuses an existing path (a planted symlink included).
const oNoFollow = 0

func hostMknod(string, uint32, uint64) error {
	return errors.New("device nodes cannot be created on this system")
}

func hostLsetxattr(string, string, []byte) error { return errors.New("no extended attributes here") }
