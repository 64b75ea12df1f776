package safeio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Replace moves the finished directory into place, replacing whatever final holds (build --force). The
// old contents are moved aside first and removed only once the new directory is in place, so a failure
// at any point leaves either the old or the new directory whole.
func (d *Dir) Replace() error {
	if d.done {
		return nil
	}
	if _, err := os.Lstat(d.final); errors.Is(err, fs.ErrNotExist) {
		return d.Commit()
	}
	d.done = true
	defer d.untrack()
	aside := tempName(d.final)
	if err := os.Rename(d.final, aside); err != nil {
		os.RemoveAll(d.tmp)
		return fmt.Errorf("moving the old %s aside: %w", d.final, err)
	}
	if err := os.Rename(d.tmp, d.final); err != nil {
		os.Rename(aside, d.final)
		os.RemoveAll(d.tmp)
		return fmt.Errorf("moving the output into %s: %w", d.final, err)
	}
	// Tracked (removed on an emergency exit) only now: until the new directory is in place, aside holds
	// the only whole copy.
	defer TrackTemp(aside)()
	return os.RemoveAll(aside)
}
