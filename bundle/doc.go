// Package bundle is romforge's output format: a directory with images/*.img, manifest.json (what was
// built from what, every image's hash, the patch report, audits, and the ordered flash plan), flash.sh
// and flash.bat (plain AOSP fastboot commands with product and anti-rollback checks, for people without
// romforge) and, for A-only devices without dynamic partitions, a recovery-flashable block OTA zip.
// Everything in a bundle is deterministic for the same inputs (zip times come from SOURCE_DATE_EPOCH).
package bundle
