// Package tree is romforge's model of an Android file tree: an io/fs.FS whose every entry also carries the
// metadata Android needs (owner, group, mode, SELinux label, file capabilities, other xattrs, symlink target,
// device number, hard-link identity).
//
// Filesystem readers (fs/ext4, fs/erofs), a host directory plus AOSP fs_config/file_contexts files (Dir), an
// in-memory tree (Mem) and an Overlay of changes on top of any of these all implement Tree, and filesystem
// writers consume any Tree. Patching therefore never needs to extract an image to disk: the patch engine
// edits an Overlay over the source image's Tree and a writer streams the result into a new image.
package tree
