package avb

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/validators"
)

// fx returns the shared fixtures directory (skips when unavailable).
func fx(t *testing.T) string {
	t.Helper()
	return validators.Fixtures(t)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyTo(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func loadFile(t *testing.T, path string) *Image {
	t.Helper()
	img, f, err := ReadImageFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return img
}

func textOf(t *testing.T, img *Image) string {
	t.Helper()
	var b bytes.Buffer
	if err := img.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func keyFile(t *testing.T, bits string) string {
	return filepath.Join(fx(t), "keys", "testkey_rsa"+bits+".pem")
}

// avbInfo runs avbtool info_image.
func avbInfo(t *testing.T, path string) string {
	t.Helper()
	validators.Tool(t, "avbtool")
	return validators.Run(t, "avbtool", "info_image", "--image", path)
}

// compareLines reports the first differing line of two texts.
func compareLines(t *testing.T, what, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var a, b string
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			t.Fatalf("%s: line %d differs:\n ours:    %q\n avbtool: %q\nfull avbtool output:\n%s", what, i+1, a, b, want)
		}
	}
}

// memFile is an in-memory File.
type memFile struct{ b []byte }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memFile) Truncate(n int64) error {
	if n <= int64(len(m.b)) {
		m.b = m.b[:n]
	} else {
		m.b = append(m.b, make([]byte, n-int64(len(m.b)))...)
	}
	return nil
}

func (m *memFile) image() image.Image { return image.New(bytes.NewReader(m.b), int64(len(m.b))) }

// pattern makes deterministic non-trivial bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}
