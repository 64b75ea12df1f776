package fastboot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

// randomVars makes a getvar all answer set: plain variables and partition variables whose names hold
// colons.
func randomVars(rng *rand.Rand) map[string]string {
	vars := map[string]string{"product": fmt.Sprintf("p%d", rng.IntN(100)), "unlocked": "yes"}
	for i := rng.IntN(40); i > 0; i-- {
		name := fmt.Sprintf("part%d", rng.IntN(1000))
		if rng.IntN(2) == 0 {
			name += []string{"_a", "_b"}[rng.IntN(2)]
		}
		vars["partition-size:"+name] = fmt.Sprintf("0x%X", rng.Int64N(1<<36))
		vars["partition-type:"+name] = []string{"raw", "ext4", "f2fs", "raw data"}[rng.IntN(4)]
	}
	vars["version-baseband"] = "MPSS.AT.4.0-00015-SM6225"
	return vars
}

// render writes vars the way one of the tools would: the AOSP client (with or without the space after
// the colon, CRLF from Windows), romforge's text output, or romforge's --json.
func render(rng *rand.Rand, vars map[string]string) []byte {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	var b bytes.Buffer
	switch rng.IntN(4) {
	case 0:
		j, _ := json.Marshal(vars)
		return j
	case 1:
		for _, k := range keys {
			fmt.Fprintf(&b, "%s: %s\n", k, vars[k])
		}
		return b.Bytes()
	}
	sep, eol := ": ", "\n"
	if rng.IntN(2) == 0 {
		sep = ":"
	}
	if rng.IntN(3) == 0 {
		eol = "\r\n"
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "(bootloader) %s%s%s%s", k, sep, vars[k], eol)
	}
	fmt.Fprintf(&b, "all:%sFinished. Total time: 0.027s%s", eol, eol)
	return b.Bytes()
}

// Property: whichever tool saved it and however, a getvar all transcript reads back as the answers.
func TestParseGetvarDumpRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(40, 41))
	for i := range 500 {
		want := randomVars(rng)
		text := render(rng, want)
		got, err := ParseGetvarDump(bytes.NewReader(text))
		if err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, text)
		}
		if len(got) != len(want) {
			t.Fatalf("case %d: %d vars, want %d\n%s", i, len(got), len(want), text)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("case %d: %s = %q, want %q\n%s", i, k, got[k], v, text)
			}
		}
	}
}

func TestParseGetvarDumpRejects(t *testing.T) {
	for name, in := range map[string][]byte{
		"empty":       nil,
		"prose":       []byte("hello world\nno colons here\n"),
		"client only": []byte("all:\nFinished. Total time: 0.001s\n"),
		"bad json":    []byte(`{"product": 1}`),
		"huge":        bytes.Repeat([]byte("(bootloader) a: b\n"), maxDumpBytes/18+2),
		"long line":   append([]byte("(bootloader) x: "), bytes.Repeat([]byte("y"), maxDumpLine+1)...),
	} {
		_, err := ParseGetvarDump(bytes.NewReader(in))
		if !errors.Is(err, failure.ErrInvalid) || !strings.Contains(err.Error(), "getvar") {
			t.Errorf("%s: %v, want an invalid-input error about the transcript", name, err)
		}
	}
}

func FuzzGetvarDump(f *testing.F) {
	rng := rand.New(rand.NewPCG(42, 43))
	for range 4 {
		f.Add(render(rng, randomVars(rng)))
	}
	f.Add([]byte("(bootloader) partition-size:super:0x245800000\n(bootloader) product:spes\nall:\n"))
	f.Add([]byte(`{"product":"begonia","partition-size:boot":"4000000"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		vars, err := ParseGetvarDump(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, failure.ErrInvalid) {
				t.Fatalf("error without a kind: %v", err)
			}
			return
		}
		if len(vars) == 0 || len(vars) > maxDumpVars {
			t.Fatalf("%d vars accepted", len(vars))
		}
	})
}
