package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/romforge/romforge/patches/miuitest"
)

func TestDemoRun(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Out: &out, Version: "test"})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res) == 0 {
		t.Fatal("no scenario ran")
	}
	for _, s := range res {
		if s.FindingsPre == 0 || s.FindingsPost != 0 || s.BytesWritten == 0 || len(s.GoneFromDevice) != len(miuitest.Planted.Packages) {
			t.Errorf("%s: %+v", s.Device, s)
		}
	}
	if !strings.Contains(out.String(), "audit after: 0 finding(s)") {
		t.Fatalf("output:\n%s", out.String())
	}
}
