package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/validators"
)

// TestInspectEveryFormat: each fixture is recognised as what it is, with its key fields in --json.
func TestInspectEveryFormat(t *testing.T) {
	fx := validators.Fixtures(t)
	tgz, _ := filepath.Glob(filepath.Join(fx, "fastboot/armani_images_*.tgz"))
	cases := map[string][]string{
		"sparse/pattern.sparse.img": {`"format": "sparse"`, `"total_chunks": 6`},
		"super/super.img":           {`"format": "super"`, `"metadata_version"`},
		"payload/full/payload.bin":  {`"format": "payload"`, `"op_counts"`},
		"payload/ota-full.zip":      {`"rom_kind": "ab-payload-zip"`, `"op_counts"`},
		"avb/vbmeta.img":            {`"format": "vbmeta"`, `"algorithm": "SHA256_RSA4096"`},
		"ext4/system.img":           {`"format": "ext4"`},
		tgz[0][len(fx)+1:]:          {`"rom_kind": "xiaomi-fastboot-tgz"`, `"products"`},
	}
	for file, wants := range cases {
		code, out, stderr := runCLI(t, "inspect", filepath.Join(fx, file), "--json")
		if code != 0 {
			t.Errorf("%s: exit %d %s", file, code, stderr)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %s", file, w)
			}
		}
	}
}
