//go:build amd64 && !purego

package avb

import "golang.org/x/sys/cpu"

// sha256x2 runs n 64-byte blocks of p1 through the SHA-256 state state[0:8] and of p2 through
// state[8:16], both at once (sha256x2_amd64.s).
//
//go:noescape
func sha256x2(state *[16]uint32, p1, p2 *byte, n int)

func cpuid(leaf, sub uint32) (a, b, c, d uint32)

// haveSHA256x2 says the CPU has the SHA extensions (CPUID.7.0:EBX bit 29) and the SSSE3/SSE4.1
// shuffles the two-stream code uses.
var haveSHA256x2 = func() bool {
	if !cpu.X86.HasSSSE3 || !cpu.X86.HasSSE41 {
		return false
	}
	if max, _, _, _ := cpuid(0, 0); max < 7 {
		return false
	}
	_, b, _, _ := cpuid(7, 0)
	return b&(1<<29) != 0
}()
