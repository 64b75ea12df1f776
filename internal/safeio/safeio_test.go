package safeio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadDataAtHugeClaim(t *testing.T) {
	r := bytes.NewReader(make([]byte, 100))
	if _, err := ReadDataAt(r, 1<<40, 0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("huge claim: err = %v, want unexpected EOF", err)
	}
	if _, err := ReadDataAt(r, 1<<63, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("absurd claim: err = %v, want ErrTooLarge", err)
	}
	b, err := ReadDataAt(r, 10, 90)
	if err != nil || len(b) != 10 {
		t.Fatalf("tail: %v %d", err, len(b))
	}
	if _, err := ReadDataAt(r, 11, 90); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("past end: %v", err)
	}
	big := make([]byte, chunk+5)
	big[chunk+4] = 7
	got, err := ReadData(bytes.NewReader(big), uint64(len(big)))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("multi-chunk read: %v", err)
	}
}

func TestSliceCapAndRange(t *testing.T) {
	if SliceCap(1<<50, 8) != -1 {
		t.Fatal("absurd count accepted")
	}
	if c := SliceCap(1<<30, 8); c != chunk/8 {
		t.Fatalf("cap = %d", c)
	}
	if SliceCap(3, 8) != 3 {
		t.Fatal("small count changed")
	}
	if CheckRange(10, 5, 15) != nil || CheckRange(10, 6, 15) == nil || CheckRange(1<<62, 1<<62, 1<<63-1) == nil {
		t.Fatal("CheckRange wrong")
	}
}

func TestContextReaderStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := ContextReader(ctx, strings.NewReader("abcdef"))
	b := make([]byte, 3)
	if n, err := r.Read(b); n != 3 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	cancel()
	if _, err := r.Read(b); !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
}

func TestCStringAndAllZero(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{{"abc\x00\x00", "abc"}, {"abcd", "abcd"}, {"\x00x", ""}, {"", ""}} {
		if got := CString([]byte(tc.in)); got != tc.want {
			t.Errorf("CString(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for n := 0; n < 40; n++ {
		b := make([]byte, n)
		if !AllZero(b) {
			t.Fatalf("AllZero of %d zero bytes = false", n)
		}
		for i := range b {
			b[i] = 1
			if AllZero(b) {
				t.Fatalf("AllZero with byte %d of %d set = true", i, n)
			}
			b[i] = 0
		}
	}
}

func TestCopyContextStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var w countingWriter
	w.after = func() { cancel() }
	_, err := CopyContext(ctx, &w, io.LimitReader(zeros{}, 1<<40))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if w.n > 2<<20 {
		t.Fatalf("copied %d bytes after cancel", w.n)
	}
	n, err := CopyContext(context.Background(), io.Discard, io.LimitReader(zeros{}, 5<<20+3))
	if err != nil || n != 5<<20+3 {
		t.Fatalf("n=%d err=%v", n, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type countingWriter struct {
	n     int
	after func()
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	c.after()
	return len(p), nil
}
