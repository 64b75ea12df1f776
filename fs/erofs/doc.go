// Package erofs reads and writes EROFS images (Linux's Enhanced Read-Only File System, used by Android for
// system, vendor and product partitions) without root.
//
// Open reads an image over an io.ReaderAt as a tree.Tree (io/fs plus owners, modes, xattrs, symlinks,
// device numbers and hard links), streaming file contents and decompressing LZ4/LZ4HC clusters on demand.
// Write builds an image from any tree.Tree: uncompressed (tail-packed like mkfs.erofs) or LZ4/LZ4HC with
// fixed-output-size clusters compressed on all cores, deterministic for the same tree and options.
//
// The on-disk format facts come from the kernel's erofs_fs.h; layout choices are our own.
package erofs
