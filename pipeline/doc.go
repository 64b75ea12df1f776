// Package pipeline is the whole job after fetching: detect and unpack a ROM, audit it, patch its
// filesystem images through overlays (never extracting them), rebuild only the images a patch touched,
// deal with verified boot, and write a bundle (images, manifest.json with hashes, reports and the flash
// plan, flash scripts, and a recovery zip for A-only devices). Same input and options give the same
// bytes: every time stamp comes from SOURCE_DATE_EPOCH or the input.
package pipeline
