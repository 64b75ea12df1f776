// Package pipeline is the whole job after fetching (romforge build): open and check a ROM, unpack it,
// audit its filesystems and boot ramdisks, harden them through overlays (the patch sets, then the
// audit-driven closure; nothing is extracted), rebuild only the images that changed, deal with verified
// boot, audit the built images, and write a bundle (images, super.img for dynamic devices, manifest.json
// with hashes, reports and the flash plan, flash scripts, and a recovery zip for A-only devices). Each of
// those is a stage method of one job (build.go). Same input and options give the same bytes: every time
// stamp comes from Options.Epoch, which is SOURCE_DATE_EPOCH (the Unix epoch when it is unset).
package pipeline
