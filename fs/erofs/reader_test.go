package erofs

import (
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

func openImage(t *testing.T, path string) *FS {
	t.Helper()
	img, err := image.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	f, err := Open(img)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return f
}

func hostTree(t *testing.T, dir string) tree.Tree {
	t.Helper()
	d, err := tree.NewDir(dir, tree.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestReadFixtures(t *testing.T) {
	fx := validators.Fixtures(t)
	for _, c := range []struct {
		img, src string
		o        cmpOpts
	}{
		{"system.img", "rom/system", cmpOpts{}},
		{"system.lz4.img", "rom/system", cmpOpts{}},
		{"system.lz4hc.img", "rom/system", cmpOpts{}},
		{"system.fc.img", "rom/system", cmpOpts{labelsNUL: true}},
		{"vendor.img", "rom/vendor", cmpOpts{}},
	} {
		t.Run(c.img, func(t *testing.T) {
			f := openImage(t, filepath.Join(fx, "erofs", c.img))
			compareTrees(t, hostTree(t, filepath.Join(fx, c.src)), f, c.o)
		})
	}
}

func TestOpenRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty": nil,
		"zeros": make([]byte, 8192),
	} {
		if _, err := Open(image.New(bytesReaderAt(b), int64(len(b)))); !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, errEOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, errEOF
	}
	return n, nil
}

var errEOF = io.EOF
