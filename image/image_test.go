package image

import (
	"bytes"
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
	sum, err := SHA256(New(strings.NewReader(""), 0))
	if err != nil || sum != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("sha256 of empty = %s, %v", sum, err)
	}
}
