// Package payload reads and writes Android update_engine payloads (payload.bin, "CrAU" version 2), the
// container of every A/B OTA. It decodes the DeltaArchiveManifest protobuf with google.golang.org/protobuf's wire
// reader (protowire) and field numbers from update_metadata.proto rather than generated types, so that
// every repeated field's count is bounded against the real input before anything is allocated and the
// types callers see stay Go-shaped (int64 sizes, named operations); it bounds every count and range, and extracts partitions with
// a bounded pool of workers that write with WriteAt: full-OTA operations (REPLACE, REPLACE_BZ, REPLACE_XZ with
// BCJ filters, ZSTD, ZERO, DISCARD) and delta operations against a source image (SOURCE_COPY, SOURCE_BSDIFF,
// BROTLI_BSDIFF). Every operation's data hash is checked before it is decoded, every source hash before it
// is used, and each partition's final hash at the end. The writer makes full payloads (used by tests, fuzz
// seeds and benchmarks) that AOSP's paycheck accepts.
package payload
