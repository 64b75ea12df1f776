package apk

import (
	"bytes"
	"errors"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

func TestReadBuilt(t *testing.T) {
	b := Build("com.xiaomi.xmsf", "", map[string][]byte{"classes.dex": []byte("dex\n035\x00 https://api.xmpush.xiaomi.com")})
	m, err := Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Package != "com.xiaomi.xmsf" || m.OverlayTarget != "" || m.VersionCode != "1" {
		t.Fatalf("%+v", m)
	}
	ov := Build("com.miui.cloudservice.overlay", "com.miui.cloudservice", nil)
	m, err = Read(bytes.NewReader(ov), int64(len(ov)))
	if err != nil || m.OverlayTarget != "com.miui.cloudservice" {
		t.Fatalf("overlay: %+v %v", m, err)
	}
}

func TestReadBad(t *testing.T) {
	for name, b := range map[string][]byte{"not zip": []byte("hello"), "no manifest": Build("x", "", nil)[:30]} {
		if _, err := Read(bytes.NewReader(b), int64(len(b))); !errors.Is(err, failure.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add(Build("com.example", "", nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Read(bytes.NewReader(b), int64(len(b)))
		if err == nil && m.Package == "" {
			t.Fatal("manifest without package accepted")
		}
	})
}
