// Package bootimg reads, unpacks, repacks and builds Android boot images: boot header versions 0 to 4
// (including the CAF/QCOM v0 variant whose device-tree image size sits in the header_version word) and
// vendor_boot versions 3 and 4 (vendor ramdisk table, bootconfig), as laid out by AOSP bootimg.h.
//
// The package owns the container only: the kernel, ramdisks, second stage, recovery dtbo, dtb, QCOM dt,
// boot signature and bootconfig are opaque sections here (package cpio reads ramdisks, package dtbo reads
// dtbo images, package avb owns an AVB footer that may follow the sections).
//
// Repacking an unmodified unpack reproduces the input byte for byte: the SHA-1 id, reserved words, bytes
// after a string's terminator, non-zero padding and anything after the last section (an AVB footer,
// partition padding) are carried in header.json and the "tail" file. Build reproduces AOSP mkbootimg
// (and, with Args.Legacy, Debian's older mkbootimg) for the same arguments.
package bootimg
