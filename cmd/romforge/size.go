package main

import (
	"strconv"
	"strings"
)

// parseSize reads a byte count: decimal, 0x hex, or decimal with a K/M/G/T suffix (powers of 1024,
// optionally followed by "B" or "iB"). Every size flag of every command uses it.
func parseSize(s string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	if !strings.HasPrefix(u, "0X") {
		u = strings.TrimSuffix(strings.TrimSuffix(u, "B"), "I")
		if n := len(u); n > 0 {
			if i := strings.IndexByte("KMGT", u[n-1]); i >= 0 {
				mult = 1 << (10 * (i + 1))
				u = u[:n-1]
			}
		}
	}
	v, err := strconv.ParseInt(u, 0, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, usagef("invalid size %q (use e.g. 268435456, 0x10000000, 256M or 1G)", s)
	}
	return v * mult, nil
}
