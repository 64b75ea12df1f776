package lp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/romforge/romforge/image"
	"github.com/romforge/romforge/internal/failure"
	"github.com/romforge/romforge/internal/validators"
	"github.com/romforge/romforge/progress"
)

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func imgSum(t *testing.T, img image.Image) [32]byte {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, image.Reader(img)); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// TestReadFixtures: our parse of lpmake's images matches lpdump (text, every slot, and JSON).
func TestReadFixtures(t *testing.T) {
	validators.Tool(t, "lpdump")
	fx := validators.Fixtures(t)
	for _, name := range []string{"super.img", "super_empty.img", "super-ab.img"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(fx, "super", name)
			s := openSuper(t, path)
			if got, want := s.MetadataOnly(), name == "super_empty.img"; got != want {
				t.Errorf("MetadataOnly = %v", got)
			}
			if len(s.Problems()) != 0 {
				t.Errorf("problems on a clean image: %v", s.Problems())
			}
			compareLpdumpText(t, path, s)
			m, _ := s.Metadata(0)
			compareLpdumpJSON(t, path, m)
			if name == "super-ab.img" {
				if s.Slots() != 3 || m.Version() != "10.2" || m.HeaderFlags != HeaderFlagVirtualAB {
					t.Errorf("super-ab: slots %d version %s flags %#x", s.Slots(), m.Version(), m.HeaderFlags)
				}
			}
			in := s.Info()
			if len(in.Partitions) != len(m.Partitions) || in.MetadataVersion != m.Version() || len(in.DifferingSlots) != 0 {
				t.Errorf("Info: %+v", in)
			}
		})
	}
}

// TestPartitionsMatchLpunpack: the logical partitions we expose equal lpunpack's output (and the images
// lpmake was given).
func TestPartitionsMatchLpunpack(t *testing.T) {
	validators.Tool(t, "lpunpack")
	fx := validators.Fixtures(t)
	for _, tc := range []struct {
		file string
		slot int
	}{{"super.img", 0}, {"super-ab.img", 0}, {"super-ab.img", 1}} {
		t.Run(tc.file+"/"+strconv.Itoa(tc.slot), func(t *testing.T) {
			path := filepath.Join(fx, "super", tc.file)
			out := t.TempDir()
			validators.Run(t, "lpunpack", "--slot="+strconv.Itoa(tc.slot), path, out)
			s := openSuper(t, path)
			m, _ := s.Metadata(tc.slot)
			for _, p := range m.Partitions {
				img, err := s.Partition(tc.slot, p.Name)
				if err != nil {
					t.Fatal(err)
				}
				if img.Size() != int64(p.Size) {
					t.Errorf("%s: size %d, metadata %d", p.Name, img.Size(), p.Size)
				}
				if got, want := imgSum(t, img), fileSum(t, filepath.Join(out, p.Name+".img")); got != want {
					t.Errorf("%s differs from lpunpack's", p.Name)
				}
			}
		})
	}
	s := openSuper(t, filepath.Join(fx, "super", "super.img"))
	sys, _ := s.Partition(0, "system")
	if imgSum(t, sys) != fileSum(t, filepath.Join(fx, "ext4", "system.img")) {
		t.Error("system differs from the ext4 image lpmake was given")
	}
	e := openSuper(t, filepath.Join(fx, "super", "super_empty.img"))
	if _, err := e.Partition(0, "system"); !errors.Is(err, failure.ErrInvalid) {
		t.Errorf("partition from super_empty: %v", err)
	}
	if _, err := s.Partition(0, "nope"); err == nil {
		t.Error("unknown partition accepted")
	}
}

func fixtureSpec(t *testing.T, fx string) BuildSpec {
	t.Helper()
	sys, err := image.OpenFile(filepath.Join(fx, "ext4", "system.img"))
	if err != nil {
		t.Fatal(err)
	}
	ven, err := image.OpenFile(filepath.Join(fx, "erofs", "vendor.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close(); ven.Close() })
	return BuildSpec{
		DeviceSize: 41943040, MetadataMaxSize: 65536, MetadataSlots: 2, BlockDeviceName: "super",
		Groups: []GroupSpec{{"main", 37748736}},
		Partitions: []PartitionSpec{
			{Name: "system", Group: "main", Attributes: AttrReadonly, Image: sys},
			{Name: "vendor", Group: "main", Attributes: AttrReadonly, Image: ven},
		},
	}
}

// TestBuildMatchesLpmake: for the fixtures' lpmake command lines we write byte-identical images, and
// lpdump/lpunpack read ours.
func TestBuildMatchesLpmake(t *testing.T) {
	validators.Tool(t, "lpdump")
	validators.Tool(t, "lpunpack")
	fx := validators.Fixtures(t)
	dir := t.TempDir()
	spec := fixtureSpec(t, fx)
	abSpec := spec
	abSpec.MetadataSlots, abSpec.VirtualAB = 3, true
	abSpec.Groups = []GroupSpec{{"main", 18874368}}
	abSpec = abSpec.WithSlotSuffixes()

	for _, tc := range []struct {
		name string
		spec BuildSpec
	}{{"super.img", spec}, {"super-ab.img", abSpec}} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name)
			f, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			rec := &progress.Recorder{}
			tc.spec.Progress = rec
			m, err := Build(context.Background(), f, tc.spec)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.Total("super: " + tc.spec.Partitions[0].Name); got != tc.spec.Partitions[0].Image.Size() {
				t.Errorf("progress total %d", got)
			}
			if fileSum(t, out) != fileSum(t, filepath.Join(fx, "super", tc.name)) {
				t.Errorf("%s differs from lpmake's", tc.name)
			}
			// The composed (uncopied) form reads exactly as lpmake's image.
			img, _, err := Compose(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if imgSum(t, img) != fileSum(t, filepath.Join(fx, "super", tc.name)) {
				t.Errorf("Compose of %s differs from lpmake's", tc.name)
			}
			s := openSuper(t, out)
			compareLpdumpText(t, out, s)
			compareLpdumpJSON(t, out, m)
			un := t.TempDir()
			validators.Run(t, "lpunpack", "--slot=0", out, un)
			for _, p := range tc.spec.Partitions {
				if p.Image == nil {
					continue
				}
				if fileSum(t, filepath.Join(un, p.Name+".img")) != imgSum(t, p.Image) {
					t.Errorf("lpunpack of our %s ≠ input image", p.Name)
				}
			}
		})
	}
	t.Run("super_empty.img", func(t *testing.T) {
		var buf bytes.Buffer
		if _, err := BuildEmpty(&buf, spec); err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(filepath.Join(fx, "super", "super_empty.img"))
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("super_empty differs from lpmake's (%d vs %d bytes)", buf.Len(), len(want))
		}
		out := filepath.Join(dir, "super_empty.img")
		os.WriteFile(out, buf.Bytes(), 0o644)
		compareLpdumpText(t, out, openSuper(t, out))
	})
}

// TestLayoutMatchesLpmake compares metadata-only images for layouts off the default path: odd sizes,
// one and three slots, alignment offsets, small alignment, block size 8192, several groups, slot
// suffixing, attributes and Virtual A/B.
func TestLayoutMatchesLpmake(t *testing.T) {
	lpmake := validators.Tool(t, "lpmake")
	dir := t.TempDir()
	cases := []struct {
		args []string
		spec BuildSpec
	}{
		{[]string{"-d", "8388608", "-m", "4096", "-s", "1", "-p", "a:none:12345", "-p", "b:readonly:0", "-p", "c:readonly:1048577"},
			BuildSpec{DeviceSize: 8388608, MetadataMaxSize: 4096, MetadataSlots: 1, Partitions: []PartitionSpec{{Name: "a", Size: 12345}, {Name: "b", Attributes: AttrReadonly}, {Name: "c", Attributes: AttrReadonly, Size: 1048577}}}},
		{[]string{"-d", "16777216", "-m", "1000", "-s", "3", "--alignment=4096", "--alignment-offset=2048", "-g", "g1:6291456", "-g", "g2:0", "-p", "x:readonly:3000000:g1", "-p", "y:none:5000:g2", "-p", "z:none:70000:g1"},
			BuildSpec{DeviceSize: 16777216, MetadataMaxSize: 1000, MetadataSlots: 3, Alignment: 4096, AlignmentOffset: 2048,
				Groups:     []GroupSpec{{"g1", 6291456}, {"g2", 0}},
				Partitions: []PartitionSpec{{Name: "x", Group: "g1", Attributes: AttrReadonly, Size: 3000000}, {Name: "y", Group: "g2", Size: 5000}, {Name: "z", Group: "g1", Size: 70000}}}},
		{[]string{"-d", "33554432", "-m", "8192", "-s", "2", "--block-size=8192", "-x", "--super-name=main_super", "-g", "grp:20000000", "-p", "system:readonly:4000000:grp", "-p", "odm:none:8193:grp"},
			BuildSpec{DeviceSize: 33554432, MetadataMaxSize: 8192, MetadataSlots: 2, BlockSize: 8192, AutoSlotSuffixing: true, BlockDeviceName: "main_super",
				Groups:     []GroupSpec{{"grp", 20000000}},
				Partitions: []PartitionSpec{{Name: "system", Group: "grp", Attributes: AttrReadonly, Size: 4000000}, {Name: "odm", Group: "grp", Size: 8193}}}},
		{[]string{"-d", "20971520", "-m", "65536", "-s", "3", "--virtual-ab", "-g", "main_a:9437184", "-g", "main_b:9437184", "-p", "product_a:readonly:2097152:main_a", "-p", "product_b:readonly:0:main_b"},
			BuildSpec{DeviceSize: 20971520, MetadataSlots: 3, VirtualAB: true, Groups: []GroupSpec{{"main", 9437184}},
				Partitions: []PartitionSpec{{Name: "product", Group: "main", Attributes: AttrReadonly, Size: 2097152}}}.WithSlotSuffixes()},
	}
	for i, tc := range cases {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			theirs := filepath.Join(dir, strconv.Itoa(i)+"-lpmake.img")
			if out, err := validators.RunErr(lpmake, append(tc.args, "-o", theirs)...); err != nil {
				t.Fatalf("lpmake: %v\n%s", err, out)
			}
			var buf bytes.Buffer
			if _, err := BuildEmpty(&buf, tc.spec); err != nil {
				t.Fatal(err)
			}
			want, _ := os.ReadFile(theirs)
			if !bytes.Equal(buf.Bytes(), want) {
				ours := filepath.Join(dir, strconv.Itoa(i)+"-ours.img")
				os.WriteFile(ours, buf.Bytes(), 0o644)
				t.Errorf("metadata differs from lpmake's:\n--- lpmake\n%s--- ours\n%s", validators.Run(t, "lpdump", theirs), validators.Run(t, "lpdump", ours))
			}
		})
	}
}

// TestBuildRefusals: specs lpmake refuses are refused.
func TestBuildRefusals(t *testing.T) {
	small := image.New(bytes.NewReader(make([]byte, 8192)), 8192)
	for name, spec := range map[string]BuildSpec{
		"group overflow": {DeviceSize: 8 << 20, Groups: []GroupSpec{{"g", 4096}}, Partitions: []PartitionSpec{{Name: "a", Group: "g", Image: small}}},
		"no space":       {DeviceSize: 2 << 20, Partitions: []PartitionSpec{{Name: "a", Size: 4 << 20}}},
		"image too big":  {DeviceSize: 8 << 20, Partitions: []PartitionSpec{{Name: "a", Size: 4096, Image: small}}},
		"dup partition":  {DeviceSize: 8 << 20, Partitions: []PartitionSpec{{Name: "a"}, {Name: "a"}}},
		"unknown group":  {DeviceSize: 8 << 20, Partitions: []PartitionSpec{{Name: "a", Group: "zz"}}},
		"odd device":     {DeviceSize: 8<<20 + 1},
		"long name":      {DeviceSize: 8 << 20, Partitions: []PartitionSpec{{Name: "a234567890123456789012345678901234567"}}},
		"tiny device":    {DeviceSize: 65536},
		"default group":  {DeviceSize: 8 << 20, Groups: []GroupSpec{{"default", 0}}},
	} {
		if _, err := Layout(spec); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
