package benchgen

import (
	"bytes"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512M": 512 << 20, "2G": 2 << 30, "1.5G": 3 << 29, "64k": 64 << 10, "100": 100, "4MB": 4 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1M", "x"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestCounter(t *testing.T) {
	var b bytes.Buffer
	c := &Counter{W: &b}
	c.Write([]byte("abc"))
	c.Write([]byte("de"))
	if c.N != 5 || b.String() != "abcde" {
		t.Fatalf("counted %d, wrote %q", c.N, b.String())
	}
}
