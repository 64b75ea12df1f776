package image

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

func TestConcatSectionZero(t *testing.T) {
	a := New(strings.NewReader("hello "), 6)
	b := Zero(3)
	c := New(strings.NewReader("world"), 5)
	img := Concat(a, b, c)
	if img.Size() != 14 {
		t.Fatalf("size %d", img.Size())
	}
	got, err := io.ReadAll(Reader(img))
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte("hello \x00\x00\x00world"); !bytes.Equal(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
	sec := Section(img, 4, 6)
	buf := make([]byte, 6)
	if _, err := sec.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "o \x00\x00\x00w" {
		t.Fatalf("section %q", buf)
	}
	// Reading past the end reports EOF with the bytes that were there.
	n, err := img.ReadAt(make([]byte, 10), 10)
	if n != 4 || err != io.EOF {
		t.Fatalf("tail read n=%d err=%v", n, err)
	}
	sum, err := SHA256(context.Background(), New(strings.NewReader(""), 0))
	if err != nil || sum != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("sha256 of empty = %s, %v", sum, err)
	}
}

func TestKnownZero(t *testing.T) {
	data := New(bytes.NewReader([]byte("abcd")), 4)
	c := Concat(Zero(8), data, Zero(8), Concat(Zero(4), Zero(4)))
	cases := []struct {
		off, n int64
		want   bool
	}{{0, 8, true}, {0, 9, false}, {4, 8, false}, {12, 8, true}, {12, 16, true}, {11, 2, false}, {20, 9, false}, {-1, 2, false}}
	for _, tc := range cases {
		if got := KnownZero(c, tc.off, tc.n); got != tc.want {
			t.Errorf("KnownZero(%d, %d) = %v, want %v", tc.off, tc.n, got, tc.want)
		}
	}
	if KnownZero(data, 0, 0) {
		t.Error("an image that knows nothing must not claim zeros")
	}
}
