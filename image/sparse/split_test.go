package sparse

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
)

func writePieces(t *testing.T, pieces []Piece, max int64, dir string) []string {
	t.Helper()
	var names []string
	for i := range pieces {
		var buf bytes.Buffer
		n, err := pieces[i].WriteTo(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if n != pieces[i].Size() || int64(buf.Len()) != n {
			t.Fatalf("piece %d: Size %d, wrote %d (%d)", i, pieces[i].Size(), n, buf.Len())
		}
		if n > max {
			t.Fatalf("piece %d is %d bytes > max %d", i, n, max)
		}
		p := filepath.Join(dir, fmt.Sprintf("p.%d", i))
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, p)
	}
	return names
}

// Split of the fixture big.sparse.img at 1 MiB equals simg2simg's pieces (what fastboot sends).
func TestSplitMatchesFixture(t *testing.T) {
	fx := validators.Fixtures(t)
	f, err := image.OpenFile(filepath.Join(fx, "sparse/big.sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := NewReader(f, f.Size())
	if err != nil {
		t.Fatal(err)
	}
	pieces, err := Split(m, 0x100000)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Glob(filepath.Join(fx, "sparse/big.split/big.sparse.img.*"))
	sort.Slice(want, func(i, j int) bool {
		return len(want[i]) < len(want[j]) || len(want[i]) == len(want[j]) && want[i] < want[j]
	})
	if len(want) == 0 || len(pieces) != len(want) {
		t.Fatalf("%d pieces, fixture has %d", len(pieces), len(want))
	}
	got := writePieces(t, pieces, 0x100000, t.TempDir())
	for i := range want {
		if fileSHA(t, got[i]) != fileSHA(t, want[i]) {
			t.Errorf("piece %d differs from %s", i, filepath.Base(want[i]))
		}
	}
}

// For sparse and raw sources and several limits: the pieces rebuild the input with simg2img and equal
// simg2simg's pieces of the same sparse file.
func TestSplitAgainstSimg2simg(t *testing.T) {
	validators.Tool(t, "simg2simg")
	validators.Tool(t, "simg2img")
	src := mixed(8<<20+4096*5, 11)
	dir := t.TempDir()
	sp := encode(t, src, WriteOptions{})
	spPath := filepath.Join(dir, "src.simg")
	os.WriteFile(spPath, sp, 0o644)
	for _, max := range []int64{100 << 10, 300000, 1 << 20, 3 << 20, 64 << 20} {
		m, err := NewReader(bytes.NewReader(sp), int64(len(sp)))
		if err != nil {
			t.Fatal(err)
		}
		raw := image.New(bytes.NewReader(src), int64(len(src)))
		for name, img := range map[string]image.Image{"sparse": m, "raw": raw} {
			pieces, err := Split(img, max)
			if err != nil {
				t.Fatal(err)
			}
			pd := filepath.Join(dir, fmt.Sprintf("%s-%d", name, max))
			os.Mkdir(pd, 0o755)
			got := writePieces(t, pieces, max, pd)
			out := filepath.Join(pd, "rebuilt")
			validators.Run(t, "simg2img", append(got, out)...)
			if fileSHA(t, out) != sha(src) {
				t.Fatalf("%s max %d: simg2img of %d pieces differs from the input", name, max, len(got))
			}
			// simg2simg on the same sparse file (img2simg ≡ our writer) gives the same pieces.
			ref := filepath.Join(pd, "ref")
			validators.Run(t, "simg2simg", spPath, ref, fmt.Sprint(max))
			refs, _ := filepath.Glob(ref + ".*")
			if len(refs) != len(got) {
				t.Fatalf("%s max %d: %d pieces, simg2simg made %d", name, max, len(got), len(refs))
			}
			for i := range got {
				if fileSHA(t, got[i]) != fileSHA(t, fmt.Sprintf("%s.%d", ref, i)) {
					t.Errorf("%s max %d: piece %d differs from simg2simg's", name, max, i)
				}
			}
		}
	}
}

// A limit that cannot hold one block is refused.
func TestSplitTooSmall(t *testing.T) {
	src := mixed(1<<20, 4)
	_, err := Split(image.New(bytes.NewReader(src), int64(len(src))), 200)
	if !errors.Is(err, failure.ErrUsage) {
		t.Fatalf("got %v", err)
	}
}
