// Package cpio reads, edits and writes the cpio archives Android ramdisks are made of: the SVR4 "newc"
// (070701) and "crc" (070702) formats, uncompressed, gzip or lz4 legacy frame compressed.
//
// Editing is surgical: every entry keeps its header fields (inode, mode, owner, nlink, mtime, device
// numbers) and the exact bytes it was read from, so removing or replacing one file (say an init .rc
// script) leaves every other entry byte-identical. An unmodified ramdisk is written back as its original
// compressed bytes; an edited one is re-compressed deterministically in the same format. (General cpio
// libraries rebuild headers from file metadata on write, which loses that byte-exactness.)
package cpio
