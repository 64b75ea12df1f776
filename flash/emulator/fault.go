package emulator

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/romforge/romforge/internal/failure"
)

// Fault is what the emulator does wrong on purpose.
type Fault struct {
	// DropAfter cuts the connection once after this many download bytes have been received (counted
	// from when the fault was set); 0 is off.
	DropAfter int64
	// FailFlash makes flash (and erase) of this partition answer FAIL without writing ("boot" matches
	// boot, boot_a and boot_b).
	FailFlash string
	// Latency is added before every reply.
	Latency time.Duration
	// Rate caps download speed in bytes per second; 0 is unlimited.
	Rate float64
	// CutAfter cuts the connection once, after the phone carried out the first command equal to it
	// (e.g. "flash:boot_b", "reboot-fastboot") and before it answers: the cable pulled while the phone
	// writes. The host cannot tell whether the command took effect.
	CutAfter string
}

// Parse reads "drop-after=BYTES", "fail-flash=PART", "latency=MS", "rate=MBps" or "cut-after=COMMAND"
// (several may be joined with commas) into f.
func (f *Fault) Parse(spec string) error {
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok || v == "" {
			return failure.Kinded(failure.ErrUsage, fmt.Errorf("emulator: fault %q: want drop-after=BYTES, fail-flash=PART, latency=MS, rate=MBps or cut-after=COMMAND", item))
		}
		bad := func(err error) error {
			return failure.Kinded(failure.ErrUsage, fmt.Errorf("emulator: fault %q: %v", item, err))
		}
		switch k {
		case "drop-after":
			n, err := strconv.ParseInt(v, 0, 64)
			if err != nil || n <= 0 {
				return bad(fmt.Errorf("want a positive byte count"))
			}
			f.DropAfter = n
		case "fail-flash":
			f.FailFlash = v
		case "latency":
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n < 0 || n > 600000 {
				return bad(fmt.Errorf("want milliseconds"))
			}
			f.Latency = time.Duration(n * float64(time.Millisecond))
		case "rate":
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n <= 0 {
				return bad(fmt.Errorf("want a positive MB/s"))
			}
			f.Rate = n * 1e6
		case "cut-after":
			f.CutAfter = v
		default:
			return bad(fmt.Errorf("unknown fault"))
		}
	}
	return nil
}

func (f Fault) failsFlash(part string) bool {
	if f.FailFlash == "" {
		return false
	}
	return part == f.FailFlash || part == f.FailFlash+"_a" || part == f.FailFlash+"_b"
}
