package audit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/romforge/romforge/android/apk"
	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/patches"
)

// benchRules are the rules of the built-in xiaomi-hardened set (what `romforge audit` uses by default).
func benchRules(tb testing.TB) *Rules {
	s, err := patches.Load("xiaomi-hardened")
	if err != nil {
		tb.Fatal(err)
	}
	return RulesFrom(s)
}

var benchWords = func() []string {
	r := rand.New(rand.NewPCG(1, 2))
	syl := []string{"an", "droid", "set", "tings", "man", "ager", "serv", "ice", "act", "ivity", "view", "load", "er",
		"con", "fig", "net", "work", "sync", "mi", "ui", "xiao", "acc", "ount", "data", "stat", "sec", "log"}
	var out []string
	for range 2000 {
		var b strings.Builder
		for range 2 + r.IntN(3) {
			b.WriteString(syl[r.IntN(len(syl))])
		}
		switch r.IntN(4) {
		case 0:
			out = append(out, "Lcom/android/server/"+b.String()+";")
		case 1:
			out = append(out, "com.xiaomi.market."+b.String())
		case 2:
			out = append(out, "persist.sys."+b.String())
		default:
			out = append(out, b.String())
		}
	}
	return out
}()

// benchText is dex-string-table-like data: words, NULs, now and then a dotted name.
func benchText(r *rand.Rand, n int) []byte {
	b := make([]byte, 0, n+64)
	for len(b) < n {
		b = append(b, benchWords[r.IntN(len(benchWords))]...)
		b = append(b, 0)
	}
	return b[:n]
}

// benchBinary is machine-code-like data with a string section at the end.
func benchBinary(r *rand.Rand, n int) []byte {
	b := make([]byte, 0, n+64)
	for len(b) < n*4/5 {
		v := r.Uint64()
		b = append(b, byte(v), byte(v>>8), byte(v>>16)&0x7f, 0x91, byte(v>>32), byte(v>>40), byte(v>>48)&0x3f, 0xf9)
	}
	return append(b, benchText(r, n-len(b))...)
}

// benchDex is dex-like: a string table, then skewed bytecode (deflates about 2×).
func benchDex(r *rand.Rand, n int) []byte {
	b := append([]byte("dex\n035\x00"), benchText(r, n*2/5)...)
	for len(b) < n {
		v := r.Uint64()
		b = append(b, []byte{0x12, 0x1a, 0x22, 0x38, 0x54, 0x6e, 0x70, 0x71, 0x0c, 0x0e}[v%10], byte(v>>8)&0x0f, byte(v>>16)&0x3f, 0)
	}
	return b[:n]
}

// benchTree is a small ROM-like partition: APKs with deflated dex, native libraries, text files, with a
// few planted endpoints.
func benchTree(tb testing.TB) (tree.Tree, int64) {
	r := rand.New(rand.NewPCG(3, 4))
	m := tree.NewMem()
	var total int64
	put := func(name string, b []byte) {
		if err := m.MkdirAll(name[:strings.LastIndexByte(name, '/')], tree.Meta{Mode: 0o755}); err != nil {
			tb.Fatal(err)
		}
		if err := m.Put(name, tree.Meta{Mode: 0o644}, b); err != nil {
			tb.Fatal(err)
		}
		total += int64(len(b))
	}
	for i := range 6 {
		dex := benchDex(r, 2<<20)
		if i == 2 {
			copy(dex[1<<20:], "\x00https://api.xmpush.xiaomi.com/v2\x00")
		}
		put(fmt.Sprintf("app/A%d/A%d.apk", i, i), apk.Build(fmt.Sprintf("com.example.a%d", i), "", map[string][]byte{
			"classes.dex": dex, "lib/arm64-v8a/libx.so": benchBinary(r, 256<<10),
		}))
	}
	for i := range 8 {
		b := benchBinary(r, 1<<20)
		if i == 5 {
			copy(b[500<<10:], "\x00resolver.msg.xiaomi.net\x00")
		}
		put(fmt.Sprintf("lib64/lib%d.so", i), b)
	}
	for i := range 200 {
		put(fmt.Sprintf("etc/cfg/%d.xml", i), benchText(r, 4<<10))
	}
	return m, total
}

func BenchmarkScan(b *testing.B) {
	t, total := benchTree(b)
	rules := benchRules(b)
	parts := map[string]tree.Tree{"system": t}
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		res, err := Scan(context.Background(), parts, rules, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Findings) < 2 {
			b.Fatalf("findings %v", res.Findings)
		}
	}
}

// BenchmarkMatch measures the matcher alone on text-like and binary-like data.
func BenchmarkMatch(b *testing.B) {
	rules := benchRules(b)
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		name string
		data []byte
	}{{"text", benchText(r, 4<<20)}, {"binary", benchBinary(r, 4<<20)}, {"dex", benchDex(r, 4<<20)}} {
		b.Run(c.name, func(b *testing.B) {
			s := &scanner{m: newMatcher(rules.patterns()), rules: rules}
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				s.m.scan(c.data, 0, func(hit) {})
			}
		})
	}
}

// BenchmarkScanDir scans an extracted ROM on disk, e.g. one made by scripts/bench/auditgen:
// AUDIT_BENCH_DIR=/tmp/rom go test -run '^$' -bench ScanDir -cpuprofile cpu.prof ./patches/audit
func BenchmarkScanDir(b *testing.B) {
	dir := os.Getenv("AUDIT_BENCH_DIR")
	if dir == "" {
		b.Skip("set AUDIT_BENCH_DIR to an extracted ROM directory")
	}
	_, parts, err := patches.OpenDir(dir, "")
	if err != nil {
		b.Fatal(err)
	}
	rules := benchRules(b)
	for b.Loop() {
		res, err := Scan(context.Background(), parts, rules, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(res.Bytes)
	}
}
