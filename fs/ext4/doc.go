// Package ext4 reads and writes ext2/3/4 filesystem images as a tree.Tree, keeping everything Android needs:
// owners, modes, SELinux labels and capabilities (xattrs), symlinks, hard links and device nodes.
//
// The reader (Open) works over any image.Image and streams file contents straight from it: extents and
// legacy block maps, 32/64-bit group descriptors, flex_bg, meta_bg, htree directories (read linearly), inline
// data, in-inode and block xattrs, and metadata_csum verification. The journal is ignored.
//
// The writer (Write) builds a new filesystem from any tree.Tree as an unprivileged user, deterministically
// (fixed UUID, hash seed and times), into an io.WriterAt. Every malformed input is reported with an error
// that satisfies errors.Is(err, failure.ErrInvalid).
package ext4
