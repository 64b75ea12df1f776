package fastboot

import (
	"errors"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

func TestParseReply(t *testing.T) {
	good := []struct {
		in     string
		status string
		value  string
		size   int64
	}{
		{"OKAY", "OKAY", "", 0},
		{"OKAYarmani", "OKAY", "armani", 0},
		{"FAILGetVar Variable Not found", "FAIL", "GetVar Variable Not found", 0},
		{"INFOerasing...", "INFO", "erasing...", 0},
		{"TEXTsome text", "TEXT", "some text", 0},
		{"DATA00041000", "DATA", "00041000", 0x41000},
		{"DATAffffffff", "DATA", "ffffffff", 0xffffffff},
	}
	for _, g := range good {
		r, err := ParseReply([]byte(g.in))
		if err != nil || r.Status != g.status || r.Value != g.value || r.DataSize != g.size {
			t.Errorf("ParseReply(%q) = %+v, %v", g.in, r, err)
		}
	}
	for _, bad := range []string{"", "OK", "okay", "BUSYx", "DATA", "DATA123456789", "DATAxyz", "DATA-0000001"} {
		_, err := ParseReply([]byte(bad))
		var pe *ProtocolError
		if !errors.As(err, &pe) || !errors.Is(err, failure.ErrIO) {
			t.Errorf("ParseReply(%q): err = %v, want a ProtocolError", bad, err)
		}
	}
}

func FuzzReply(f *testing.F) {
	for _, s := range []string{"OKAY", "OKAY0x20000000", "FAILno", "INFOx", "TEXTy", "DATA00001000", "DATA0", "DATAzzzzzzzz", "\x00\x01\x02\x03", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReply(b)
		if err != nil {
			if r.Status != "" {
				t.Fatalf("error with a status: %+v", r)
			}
			return
		}
		switch r.Status {
		case StatusOkay, StatusFail, StatusInfo, StatusText:
			if r.Value != string(b[4:]) {
				t.Fatalf("value %q lost bytes of %q", r.Value, b)
			}
		case StatusData:
			if r.DataSize < 0 || r.DataSize > 0xffffffff {
				t.Fatalf("DATA size %d out of range", r.DataSize)
			}
		default:
			t.Fatalf("unknown status %q accepted", r.Status)
		}
	})
}

func TestParseVarLines(t *testing.T) {
	got := ParseVarLines([]string{"product:alioth", "partition-size:boot_a: 0x4000", "has-slot:boot:yes",
		"version-bootloader: MP:1.2", "no colon here", "current-slot:a"})
	want := map[string]string{"product": "alioth", "partition-size:boot_a": "0x4000", "has-slot:boot": "yes",
		"version-bootloader": "MP:1.2", "current-slot": "a"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestParseNetSerial(t *testing.T) {
	cases := []struct {
		in, network, addr string
		net, bad          bool
	}{
		{"tcp:127.0.0.1", "tcp", "127.0.0.1:5554", true, false},
		{"tcp:127.0.0.1:1234", "tcp", "127.0.0.1:1234", true, false},
		{"udp:phone.local:9", "udp", "phone.local:9", true, false},
		{"tcp:[::1]:77", "tcp", "[::1]:77", true, false},
		{"tcp:[::1]", "tcp", "[::1]:5554", true, false},
		{"tcp:", "", "", true, true},
		{"tcp:host:99999", "", "", true, true},
		{"tcp:host:x", "", "", true, true},
		{"0123456789ABCDEF", "", "", false, false},
	}
	for _, c := range cases {
		network, addr, isNet, err := ParseNetSerial(c.in)
		if isNet != c.net || (err != nil) != c.bad || network != c.network || addr != c.addr {
			t.Errorf("ParseNetSerial(%q) = %q %q %v %v", c.in, network, addr, isNet, err)
		}
		if c.bad && !errors.Is(err, failure.ErrUsage) {
			t.Errorf("ParseNetSerial(%q): %v is not a usage error", c.in, err)
		}
	}
}
