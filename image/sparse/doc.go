// Package sparse reads, writes and splits Android sparse images (the format of AOSP libsparse,
// sparse_format.h: a 28-byte file header, then RAW, FILL, DONT_CARE and CRC32 chunks).
//
// NewReader exposes the expanded image as an image.Image without expanding it anywhere: reads go
// through a chunk index. Write turns any image.Image into a sparse file the way img2simg does (or
// smaller, with DONT_CARE holes), and Split cuts an image into sparse pieces of bounded size that
// together rebuild it, the way the fastboot client does for max-download-size.
package sparse
