// Package lp reads and writes Android dynamic-partition "super" images: the liblp metadata (geometry, a
// header and four tables per metadata slot, each kept twice) that maps logical partitions such as
// system and vendor onto extents of one or more block devices.
//
// NewReader parses and validates every slot of a super image (or of a metadata-only super_empty.img) and
// exposes each logical partition as an image.Image over the super file without copying. Build lays out
// and writes a super image from partition images the way lpmake does (same alignment and first-fit
// allocation, so the metadata matches lpmake's for the same arguments); BuildEmpty writes the
// metadata-only super_empty.img that `fastboot update` sends to update-super.
package lp
