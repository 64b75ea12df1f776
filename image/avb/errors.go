package avb

import (
	"errors"
	"fmt"

	"github.com/romforge/romforge/internal/failure"
)

// FormatError reports malformed or unsupported AVB data. It satisfies errors.Is(err, failure.ErrInvalid).
type FormatError struct {
	Offset int64 // byte offset in the structure being parsed, -1 when not meaningful
	What   string
}

func (e *FormatError) Error() string {
	if e.Offset < 0 {
		return "avb: " + e.What
	}
	return fmt.Sprintf("avb: offset %d: %s", e.Offset, e.What)
}

// Unwrap makes every FormatError an ErrInvalid.
func (e *FormatError) Unwrap() error { return failure.ErrInvalid }

func formatErr(off int64, format string, args ...any) error {
	return &FormatError{Offset: off, What: fmt.Sprintf(format, args...)}
}

// ErrNoFooter reports an image without an AVBf footer in its last 64 bytes.
var ErrNoFooter = failure.Kinded(failure.ErrInvalid, errors.New("avb: no AVB footer (AVBf) at the end of the image"))

// invalid wraps err (e.g. a bad option) as ErrInvalid with the package prefix.
func invalid(format string, args ...any) error {
	return failure.Kinded(failure.ErrInvalid, fmt.Errorf("avb: "+format, args...))
}
