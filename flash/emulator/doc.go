// Package emulator is a virtual fastboot phone built from a device catalog entry: it answers getvar
// like a bootloader (and like fastbootd after reboot-fastboot), keeps its partitions as raw files in a
// state directory (sparse downloads expanded, split sparse pieces applied over each other), honours
// A/B slots, the lock state and anti-rollback variables, counts every byte written to a partition, and
// injects faults (dropped connections, failing flashes, latency, a rate cap). It serves the real AOSP
// fastboot client and flash/fastboot's Client over TCP and UDP, so tests, CI and demos flash end to
// end without a phone.
package emulator
