// Package flash plans and performs flashing a phone over fastboot, safely: a plan.Plan is the ordered list of
// steps (from a romforge bundle, a Xiaomi fastboot ROM's parsed flash script, or PARTITION=IMAGE pairs);
// Preflight asks the device everything that can make a flash dangerous — product, lock state,
// anti-rollback, partition sizes, slots, battery, snapshot state — and refuses with every reason before a
// single byte is written; Run writes the inactive slot first, activates it only after every write
// succeeded, splits images by max-download-size, records a journal so a pulled cable can be resumed,
// and reports progress per image. The fastboot connection is behind the Device interface so tests drive
// a mock or the emulator.
package flash
