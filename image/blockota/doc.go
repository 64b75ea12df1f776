// Package blockota reads and writes block-based OTA images: a `<partition>.transfer.list` (versions
// 1–4, as written by AOSP's blockimgdiff) plus `<partition>.new.dat` (optionally `.br` or `.xz`
// compressed). Apply turns a full OTA's transfer list and new data into the raw partition image;
// Build does the reverse, for recovery-flashable zips of A-only devices. Incremental OTAs (stash, move,
// bsdiff, imgdiff) need the old partition and are reported as unsupported.
package blockota
