package failure

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestKinded(t *testing.T) {
	err := fmt.Errorf("open rom: %w", Kinded(ErrInvalid, io.ErrUnexpectedEOF))
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("errors.Is lost a kind: %v", err)
	}
	if err.Error() != "open rom: unexpected EOF" {
		t.Fatalf("message changed: %q", err)
	}
	if Kinded(ErrIO, nil) != nil {
		t.Fatal("nil error became non-nil")
	}
}
