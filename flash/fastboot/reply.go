package fastboot

import (
	"fmt"
	"strconv"

	"github.com/romforge/romforge/internal/failure"
)

// Limits of the protocol as the v29 AOSP client and most bootloaders apply them.
const (
	// MaxCommandSize is the longest command a device must accept (FB_COMMAND_SZ).
	MaxCommandSize = 64
	// MaxReplySize is the longest reply the AOSP client reads in one message (FB_RESPONSE_SZ).
	MaxReplySize = 256
)

// Reply statuses.
const (
	StatusOkay = "OKAY"
	StatusFail = "FAIL"
	StatusInfo = "INFO"
	StatusText = "TEXT"
	StatusData = "DATA"
)

// Reply is one parsed device message, or (from Client.Command) the final one of an exchange with the
// INFO and TEXT messages that preceded it.
type Reply struct {
	Status string // OKAY, FAIL, INFO, TEXT or DATA
	// Value is the payload after the status: getvar's answer, FAIL's reason, INFO's line.
	Value string
	// DataSize is DATA's announced byte count.
	DataSize int64
	// Info holds the INFO lines (and TEXT pieces) received before the final reply.
	Info []string
}

// ProtocolError is a message that breaks the protocol: not a known status, a malformed DATA size, a
// reply that does not fit the exchange. The connection is out of step afterwards.
type ProtocolError struct {
	Command string
	Msg     string
}

func (e *ProtocolError) Error() string {
	if e.Command == "" {
		return "fastboot: protocol error: " + e.Msg
	}
	return fmt.Sprintf("fastboot: %s: protocol error: %s", e.Command, e.Msg)
}

// Unwrap makes protocol errors device I/O failures.
func (e *ProtocolError) Unwrap() error { return failure.ErrIO }

// RemoteError is a FAIL reply: the device refused or could not do the command.
type RemoteError struct {
	Command string
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("fastboot: %s: device said FAIL: %s", e.Command, e.Message)
}

// Unwrap makes device refusals I/O failures for the CLI's exit codes; callers that need to tell them
// apart use errors.As(err, **RemoteError).
func (e *RemoteError) Unwrap() error { return failure.ErrIO }

// ParseReply parses one device message. It accepts any payload bytes (shown quoted in errors) but only
// the five statuses, and DATA only with 1 to 8 hex digits as the AOSP client and devices send them.
func ParseReply(b []byte) (Reply, error) {
	if len(b) < 4 {
		return Reply{}, &ProtocolError{Msg: fmt.Sprintf("reply %q is shorter than a status", b)}
	}
	r := Reply{Status: string(b[:4]), Value: string(b[4:])}
	switch r.Status {
	case StatusOkay, StatusFail, StatusInfo, StatusText:
		return r, nil
	case StatusData:
		v := r.Value
		if len(v) == 0 || len(v) > 8 {
			return Reply{}, &ProtocolError{Msg: fmt.Sprintf("DATA reply %q does not carry 8 hex digits", b)}
		}
		n, err := strconv.ParseUint(v, 16, 32)
		if err != nil {
			return Reply{}, &ProtocolError{Msg: fmt.Sprintf("DATA reply %q does not carry 8 hex digits", b)}
		}
		r.DataSize = int64(n)
		return r, nil
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return Reply{}, &ProtocolError{Msg: fmt.Sprintf("unknown reply status in %q", b)}
}
