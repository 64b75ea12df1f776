// Package benchgen holds what the benchmark input generators (scripts/bench/*gen*) share.
package benchgen

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseSize reads a -size value: a number with an optional K, M or G suffix (binary units, optional
// trailing B, fractions allowed: 1.5G).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B")
	mult := int64(1)
	if t != "" {
		if i := strings.IndexByte("KMG", t[len(t)-1]); i >= 0 {
			mult, t = 1<<(10*(i+1)), t[:len(t)-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad -size %q: want e.g. 512M or 2G", s)
	}
	return int64(v * float64(mult)), nil
}

// Counter counts the bytes written through it to W.
type Counter struct {
	W io.Writer
	N int64
}

func (c *Counter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}
