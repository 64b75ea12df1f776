// Package dtbo reads Android dtbo (and recovery dtbo) images: the device tree table of AOSP
// dt_table.h — a big-endian header, a table of entries (size, offset, id, revision, custom words; in
// version 1 a compression flag) and the device tree blobs or overlays they point at. It checks every
// offset against the input and each blob's FDT magic, for `romforge inspect`.
package dtbo
