// Package failure names the few kinds of failure the CLI turns into exit codes. Library errors wrap one of
// these sentinels (directly or through their own typed errors' Unwrap) so cmd/romforge can map any error to
// a documented exit code with errors.Is, without libraries knowing about exit codes.
package failure

import "errors"

var (
	// ErrFindings: a check ran and found problems (exit 1), e.g. audit findings.
	ErrFindings = errors.New("problems found")
	// ErrUsage: the command line was wrong (exit 2).
	ErrUsage = errors.New("usage error")
	// ErrRefused: refused for safety; nothing was written (exit 3).
	ErrRefused = errors.New("refused for safety")
	// ErrInvalid: input is invalid, corrupt or unsupported (exit 4).
	ErrInvalid = errors.New("invalid input")
	// ErrIO: network or device I/O failed (exit 5).
	ErrIO = errors.New("I/O failure")
)

// Kinded wraps err so that errors.Is(result, kind) holds while the message stays err's own.
func Kinded(kind, err error) error {
	if err == nil {
		return nil
	}
	return &kinded{kind: kind, err: err}
}

type kinded struct{ kind, err error }

func (k *kinded) Error() string   { return k.err.Error() }
func (k *kinded) Unwrap() []error { return []error{k.err, k.kind} }
