package bootimg

import (
	"fmt"

	"github.com/romforge/romforge/internal/failure"
)

// FormatError reports a boot image that is corrupt, truncated or of an unsupported kind.
type FormatError struct {
	Offset int64 // byte offset the problem was found at (-1 when not tied to one)
	Msg    string
	Err    error // underlying cause, if any
}

func (e *FormatError) Error() string {
	s := "bootimg: " + e.Msg
	if e.Offset >= 0 {
		s = fmt.Sprintf("bootimg: at offset %d: %s", e.Offset, e.Msg)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap makes every FormatError an ErrInvalid (exit 4) while keeping the cause visible to errors.Is.
func (e *FormatError) Unwrap() []error {
	if e.Err != nil {
		return []error{failure.ErrInvalid, e.Err}
	}
	return []error{failure.ErrInvalid}
}

func formatErr(off int64, format string, args ...any) error {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}
