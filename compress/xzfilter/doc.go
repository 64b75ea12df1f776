// Package xzfilter decodes .xz streams whose filter chains put branch-converter (BCJ) or Delta filters in
// front of LZMA2, as recent Xiaomi HyperOS payloads do with the ARM64 BCJ filter. It parses the xz container
// itself (stream header, block headers with their filter flags, index, footer, CRC32/CRC64/SHA-256 checks),
// hands the LZMA2 data to github.com/ulikunitz/xz/lzma, and runs its own BCJ (x86, ARM, ARM-Thumb, ARM64) and
// Delta decoders over the result. Plain LZMA2-only streams decode too, so callers can always use this reader.
// It exists because ulikunitz/xz (the pure-Go xz we depend on) rejects every filter chain but plain LZMA2.
package xzfilter
