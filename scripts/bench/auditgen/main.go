// Command auditgen writes a ROM-shaped tree for scripts/bench/audit.sh: one folder per partition holding
// many files of mixed sizes — small props/XML/rc text, .so-like binaries, odex/vdex, firmware blobs, and
// APK/JAR zips with a binary AndroidManifest.xml, deflated classes*.dex and stored resources/libraries —
// with Xiaomi hostnames and packages planted in known places. It also writes the hostname list grep is given
// (every host and audit domain of the patch sets) and the list of planted hostnames the audit must report.
//
//	go run ./scripts/bench/auditgen -o DIR -size 2G -hosts hostnames.txt -planted planted.txt
//
// It is a benchmark input generator, not part of romforge; output is deterministic for a seed.
package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/flate"

	"github.com/romforge/romforge/android/apk"
	"github.com/romforge/romforge/patches"
	"github.com/romforge/romforge/patches/audit"
	"github.com/romforge/romforge/scripts/bench/internal/benchgen"
)

func main() {
	out := flag.String("o", "", "output directory (created; must not exist or be empty)")
	sizeArg := flag.String("size", "512M", "approximate total bytes (suffix K, M, G)")
	seed := flag.Uint64("seed", 7, "random seed")
	hostsOut := flag.String("hosts", "", "write every host and audit domain of -set here, one per line")
	plantedOut := flag.String("planted", "", "write the planted hostnames here, one per line")
	setNames := flag.String("set", "xiaomi-hardened", "patch sets whose hostnames go to -hosts (comma-separated)")
	flag.Parse()
	if *out == "" {
		fail(fmt.Errorf("-o is required"))
	}
	size, err := benchgen.ParseSize(*sizeArg)
	if err != nil {
		fail(err)
	}
	if *hostsOut != "" {
		var sets []*patches.Set
		for _, n := range strings.Split(*setNames, ",") {
			s, err := patches.Load(n)
			if err != nil {
				fail(err)
			}
			sets = append(sets, s)
		}
		r := audit.RulesFrom(sets...)
		lines := append(append([]string{}, r.Hosts...), r.Domains...)
		if err := os.WriteFile(*hostsOut, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			fail(err)
		}
	}
	g := newGen(*out, size, *seed)
	start := time.Now()
	if err := g.run(); err != nil {
		fail(err)
	}
	if *plantedOut != "" {
		if err := os.WriteFile(*plantedOut, []byte(strings.Join(g.plantedHosts(), "\n")+"\n"), 0o644); err != nil {
			fail(err)
		}
	}
	fmt.Fprintf(os.Stderr, "auditgen: %d files, %d bytes in %v: %d APK/JAR; %d deflated dex entries, %d bytes inflating to %d; %d bytes of stored dex\n",
		g.files, g.written, time.Since(start).Round(time.Millisecond), g.zips, g.dexEntries, g.dexDeflated, g.dexInflated, g.storedDex)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "auditgen:", err)
	os.Exit(2)
}

// plant is one Xiaomi endpoint placed in the tree, where and how it is wrapped.
type plant struct {
	host string
	text string // the string written (URL or bare host)
}

var plants = []plant{
	{"api.xmpush.xiaomi.com", "https://api.xmpush.xiaomi.com/v2/register"},
	{"resolver.msg.xiaomi.net", "resolver.msg.xiaomi.net"},
	{"api.micloud.xiaomi.net", "https://api.micloud.xiaomi.net/mic/status/v2"},
	{"find.api.micloud.xiaomi.net", "https://find.api.micloud.xiaomi.net/mic/find/v2/"},
	{"sdkconfig.ad.intl.xiaomi.com", "https://sdkconfig.ad.intl.xiaomi.com/api/v4/detail/config"},
	{"data.mistat.intl.xiaomi.com", "https://data.mistat.intl.xiaomi.com/mistats/v3"},
	{"account.xiaomi.com", "https://account.xiaomi.com/pass/serviceLogin"},
	{"i.mi.com", "https://i.mi.com/"},
	{"tracking.intl.miui.com", "https://tracking.intl.miui.com/track/v4"},
	{"update.miui.com", "http://update.miui.com/updates/v1/miuiota.php"},
	{"sa.api.intl.miui.com", "https://sa.api.intl.miui.com/"},
	{"register.xmpush.global.xiaomi.com", "register.xmpush.global.xiaomi.com"},
	{"unlock.update.intl.miui.com", "unlock.update.intl.miui.com"},
	{"f1.market.xiaomi.com", "https://f1.market.xiaomi.com/download/"},
	{"globalapi.market.xiaomi.com", "https://globalapi.market.xiaomi.com/apm/"},
	{"adv.sec.intl.miui.com", "https://adv.sec.intl.miui.com/info/layout"},
}

// unwanted packages (from the Xiaomi sets) given to some APKs, so the package path is exercised too.
var unwanted = []string{"com.xiaomi.xmsf", "com.miui.cloudservice", "com.xiaomi.finddevice", "com.miui.msa.global",
	"com.miui.analytics", "com.miui.daemon", "com.xiaomi.account"}

type gen struct {
	root    string
	size    int64
	rng     *rand.Rand
	words   []string
	dexPool []rawEntry // pre-deflated dex blobs shared between APKs (compressing once keeps generation fast)
	soPool  [][]byte

	plantNext   int
	planted     map[string]bool
	files       int
	written     int64
	zips        int
	dexEntries  int
	dexInflated int64
	dexDeflated int64
	storedDex   int64
}

// rawEntry is a deflated zip entry ready for zip.Writer.CreateRaw.
type rawEntry struct {
	data  []byte // deflated
	plain []byte
	crc   uint32
	size  int // inflated
}

func newGen(root string, size int64, seed uint64) *gen {
	g := &gen{root: root, size: size, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), planted: map[string]bool{}}
	g.words = vocabulary(g.rng)
	return g
}

// vocabulary makes identifier-, class- and URL-like strings of the kinds a ROM's dex and .so files carry,
// including near-misses (com.xiaomi.* package names, miui.* props) that partially match the patterns.
func vocabulary(r *rand.Rand) []string {
	syl := []string{"an", "droid", "set", "tings", "man", "ager", "serv", "ice", "act", "ivity", "view", "load", "er", "con",
		"fig", "net", "work", "cam", "era", "gal", "lery", "push", "sync", "mi", "ui", "xiao", "acc", "ount", "data",
		"stat", "sec", "ur", "ity", "pay", "ment", "up", "date", "file", "prov", "ider", "re", "ceiv", "pol", "icy", "log"}
	word := func() string {
		n := 2 + r.IntN(3)
		var b strings.Builder
		for range n {
			b.WriteString(syl[r.IntN(len(syl))])
		}
		return b.String()
	}
	title := func(s string) string { return strings.ToUpper(s[:1]) + s[1:] }
	pkgs := []string{"com/android/server", "com/android/internal/os", "android/app", "androidx/core/view", "com/miui/home",
		"com/xiaomi/market", "com/miui/securitycenter", "com/xiaomi/mipicks", "kotlin/collections", "java/util/concurrent"}
	var out []string
	for range 3000 {
		switch r.IntN(6) {
		case 0, 1:
			out = append(out, "L"+pkgs[r.IntN(len(pkgs))]+"/"+title(word())+";")
		case 2:
			out = append(out, "get"+title(word()))
		case 3:
			out = append(out, strings.ReplaceAll(pkgs[r.IntN(len(pkgs))], "/", ".")+"."+word())
		case 4:
			out = append(out, "persist.sys."+word()+"."+word())
		default:
			out = append(out, word()+"_"+word())
		}
	}
	out = append(out, "https://www.google.com/", "http://schemas.android.com/apk/res/android", "connectivitycheck.gstatic.com",
		"https://play.googleapis.com/", "ro.miui.ui.version.name", "com.miui.systemui", "com.xiaomi.misettings",
		"notxiaomi.company.org", "miuicom", "https://developer.android.com/reference", "%s: %d bytes at 0x%08x")
	return out
}

// plantedHosts lists what was planted, sorted.
func (g *gen) plantedHosts() []string {
	var out []string
	for h := range g.planted {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// nextPlant returns the next endpoint string to plant (round robin), recording it.
func (g *gen) nextPlant() string {
	p := plants[g.plantNext%len(plants)]
	g.plantNext++
	g.planted[p.host] = true
	return p.text
}

// dexBlob returns dex-shaped bytes: header, a string table of vocabulary words, then bytecode-like data
// (skewed opcodes and small register numbers; deflates about 2-3×, like real dex).
func dexBlob(r *rand.Rand, words []string, n int, extra ...string) []byte {
	b := make([]byte, 0, n+1024)
	b = append(b, "dex\n035\x00"...)
	b = append(b, make([]byte, 104)...)
	strs := n * 2 / 5
	for len(b) < strs {
		w := words[r.IntN(len(words))]
		b = append(b, byte(len(w)))
		b = append(b, w...)
		b = append(b, 0)
	}
	for _, s := range extra {
		b = append(b, byte(len(s)))
		b = append(b, s...)
		b = append(b, 0)
	}
	ops := []byte{0x12, 0x13, 0x1a, 0x22, 0x38, 0x39, 0x54, 0x5b, 0x6e, 0x70, 0x71, 0x0c, 0x0a, 0x0e, 0x28, 0x52, 0x59, 0x1f, 0x35, 0xd8}
	for len(b) < n {
		v := r.Uint64()
		b = append(b, ops[v%uint64(len(ops))], byte(v>>8)&0x0f, byte(v>>16)&0x3f, 0)
	}
	return b[:n]
}

// soBlob returns ELF-shaped bytes: instruction-like words then a .rodata-like string section.
func soBlob(r *rand.Rand, words []string, n int) []byte {
	b := make([]byte, 0, n+1024)
	b = append(b, "\x7fELF\x02\x01\x01\x00"...)
	b = append(b, make([]byte, 56)...)
	code := n * 4 / 5
	for len(b) < code {
		v := r.Uint64()
		// AArch64-ish: varied low bits, a few common high opcode bytes.
		b = append(b, byte(v), byte(v>>8), byte(v>>16)&0x7f, []byte{0x91, 0xf9, 0xb9, 0x94, 0xaa, 0x52, 0xd6, 0x35}[v>>61])
		b = append(b, byte(v>>32), byte(v>>40), byte(v>>48)&0x3f, 0xf9)
	}
	for len(b) < n {
		b = append(b, words[r.IntN(len(words))]...)
		b = append(b, 0)
	}
	return b[:n]
}

func deflate(b []byte) rawEntry {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, 6)
	w.Write(b)
	w.Close()
	return rawEntry{data: buf.Bytes(), plain: b, crc: crc32.ChecksumIEEE(b), size: len(b)}
}

func (g *gen) pools() {
	sizes := []int{256 << 10, 512 << 10, 1 << 20, 2 << 20, 3 << 20, 4 << 20, 6 << 20, 8 << 20, 10 << 20, 12 << 20}
	g.dexPool = make([]rawEntry, 2*len(sizes))
	var wg sync.WaitGroup
	for i := range g.dexPool {
		r := rand.New(rand.NewPCG(uint64(i), 99))
		wg.Go(func() { g.dexPool[i] = deflate(dexBlob(r, g.words, sizes[i%len(sizes)])) })
	}
	wg.Wait()
	for i := range 12 {
		r := rand.New(rand.NewPCG(uint64(i), 77))
		g.soPool = append(g.soPool, soBlob(r, g.words, (64<<10)<<(i%8)))
	}
}

func (g *gen) run() error {
	if err := os.MkdirAll(g.root, 0o755); err != nil {
		return err
	}
	g.pools()
	// Byte budget per kind, roughly a stock ROM's mix.
	budget := func(frac float64) int64 { return int64(float64(g.size) * frac) }
	if err := g.apps(budget(0.52)); err != nil {
		return err
	}
	if err := g.jars(budget(0.06)); err != nil {
		return err
	}
	if err := g.libs(budget(0.24)); err != nil {
		return err
	}
	if err := g.odex(budget(0.10)); err != nil {
		return err
	}
	if err := g.firmware(budget(0.05)); err != nil {
		return err
	}
	return g.text(budget(0.03))
}

func (g *gen) write(name string, fill func(w io.Writer) error) error {
	p := filepath.Join(g.root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	cw := &benchgen.Counter{W: f}
	bw := bufio.NewWriterSize(cw, 1<<20)
	if err := fill(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	g.files++
	g.written += cw.N
	return f.Close()
}

var partitions = []string{"system", "system_ext", "product", "vendor"}

func (g *gen) part() string { return partitions[g.rng.IntN(len(partitions))] }

// apkSize draws an APK size: mostly a few MiB, some very large (camera, gallery, webview).
func (g *gen) apkSize() int64 {
	switch x := g.rng.IntN(100); {
	case x < 60:
		return int64(256<<10 + g.rng.IntN(3<<20))
	case x < 95:
		return int64(3<<20 + g.rng.IntN(17<<20))
	default:
		return int64(40<<20 + g.rng.IntN(60<<20))
	}
}

func (g *gen) apps(budget int64) error {
	for i := 0; budget > 0; i++ {
		size := min(g.apkSize(), budget)
		pkg := fmt.Sprintf("com.android.app%d", i)
		planted := i%9 == 4
		if i%23 == 11 {
			pkg = unwanted[(i/23)%len(unwanted)]
		}
		name := fmt.Sprintf("App%d", i)
		// AOSP stores dex uncompressed in privileged apps (so ART can map it); other apps deflate it.
		dir := []string{"app", "priv-app"}[g.rng.IntN(2)]
		n, err := g.zipFile(fmt.Sprintf("%s/%s/%s/%s.apk", g.part(), dir, name, name), pkg, size, planted, true, dir == "priv-app")
		if err != nil {
			return err
		}
		budget -= n
	}
	return nil
}

func (g *gen) jars(budget int64) error {
	for i := 0; budget > 0; i++ {
		size := min(int64(512<<10+g.rng.IntN(12<<20)), budget)
		n, err := g.zipFile(fmt.Sprintf("system/framework/framework-%d.jar", i), "", size, i%5 == 2, false, false)
		if err != nil {
			return err
		}
		budget -= n
	}
	return nil
}

// zipFile writes one APK (pkg != "") or JAR of about size bytes: manifest, deflated classes*.dex from the
// pool (plus a small unique dex carrying a planted endpoint), and stored resources, PNGs and libraries.
func (g *gen) zipFile(name, pkg string, size int64, planted, resources, storeDex bool) (int64, error) {
	var n int64
	err := g.write(name, func(w io.Writer) error {
		cw := &benchgen.Counter{W: w}
		zw := zip.NewWriter(cw)
		mod := time.Date(2009, 1, 1, 0, 0, 0, 0, time.UTC)
		if pkg != "" {
			zr, err := zip.NewReader(bytes.NewReader(apk.Build(pkg, "", nil)), int64(len(apk.Build(pkg, "", nil))))
			if err != nil {
				return err
			}
			for _, f := range zr.File {
				if err := zw.Copy(f); err != nil {
					return err
				}
			}
		}
		raw := func(name string, e rawEntry) error {
			if storeDex {
				w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: mod})
				if err != nil {
					return err
				}
				g.storedDex += int64(e.size)
				_, err = w.Write(e.plain)
				return err
			}
			w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: mod, CRC32: e.crc,
				CompressedSize64: uint64(len(e.data)), UncompressedSize64: uint64(e.size)})
			if err != nil {
				return err
			}
			g.dexEntries++
			g.dexDeflated += int64(len(e.data))
			g.dexInflated += int64(e.size)
			_, err = w.Write(e.data)
			return err
		}
		stored := func(name string, data []byte) error {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: mod})
			if err != nil {
				return err
			}
			_, err = w.Write(data)
			return err
		}
		dexBudget := size
		if resources {
			dexBudget = size * 3 / 5
		}
		for i := 1; cw.N < dexBudget; i++ {
			e := g.dexPool[g.rng.IntN(len(g.dexPool))]
			if int64(len(e.data)) > dexBudget-cw.N+(256<<10) {
				// Pick the smallest pool blob that fits, else stop.
				best := -1
				for j, c := range g.dexPool {
					if int64(len(c.data)) <= dexBudget-cw.N+(256<<10) && (best < 0 || len(c.data) > len(g.dexPool[best].data)) {
						best = j
					}
				}
				if best < 0 {
					break
				}
				e = g.dexPool[best]
			}
			dn := "classes.dex"
			if i > 1 {
				dn = fmt.Sprintf("classes%d.dex", i)
			}
			if err := raw(dn, e); err != nil {
				return err
			}
		}
		if planted {
			if err := raw("classes99.dex", deflate(dexBlob(g.rng, g.words, 64<<10, g.nextPlant()))); err != nil {
				return err
			}
		}
		if resources {
			arsc := make([]byte, min(size/10, 4<<20)+1024)
			fillText(g.rng, g.words, arsc)
			if err := stored("resources.arsc", arsc); err != nil {
				return err
			}
			if g.rng.IntN(3) == 0 {
				so := g.soPool[g.rng.IntN(len(g.soPool))]
				if err := stored("lib/arm64-v8a/libnative.so", so); err != nil {
					return err
				}
			}
			png := make([]byte, 0, 64<<10)
			for i := 0; cw.N+int64(len(png)) < size; i++ {
				png = append(png[:0], "\x89PNG\r\n\x1a\n"...)
				png = png[:cap(png)][:8+g.rng.IntN(60<<10)]
				fillRandom(g.rng, png[8:])
				if err := stored(fmt.Sprintf("res/drawable-xxhdpi/ic_%d.png", i), png); err != nil {
					return err
				}
			}
		}
		if err := zw.Close(); err != nil {
			return err
		}
		n = cw.N
		g.zips++
		return nil
	})
	return n, err
}

func fillRandom(r *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		b[i], b[i+1], b[i+2], b[i+3], b[i+4], b[i+5], b[i+6], b[i+7] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
}

// fillText fills b with vocabulary words separated by NULs and newlines.
func fillText(r *rand.Rand, words []string, b []byte) {
	for i := 0; i < len(b); {
		w := words[r.IntN(len(words))]
		i += copy(b[i:], w)
		if i < len(b) {
			b[i] = "\x00\n "[r.IntN(3)]
			i++
		}
	}
}

func (g *gen) libs(budget int64) error {
	for i := 0; budget > 0; i++ {
		so := g.soPool[g.rng.IntN(len(g.soPool))]
		lib := []string{"lib64", "lib"}[g.rng.IntN(2)]
		planted := i%40 == 17
		err := g.write(fmt.Sprintf("%s/%s/lib%s%d.so", g.part(), lib, g.words[g.rng.IntN(len(g.words))][:1], i), func(w io.Writer) error {
			// A unique first block so files differ; the rest comes from the pool.
			var head [4096]byte
			copy(head[:], so)
			fillRandom(g.rng, head[64:1024])
			w.Write(head[:min(len(so), len(head))])
			if planted {
				w.Write([]byte("\x00" + g.nextPlant() + "\x00"))
			}
			_, err := w.Write(so[min(len(so), len(head)):])
			return err
		})
		if err != nil {
			return err
		}
		budget -= int64(len(so))
	}
	return nil
}

func (g *gen) odex(budget int64) error {
	for i := 0; budget > 0; i++ {
		n := min(int64(128<<10+g.rng.IntN(16<<20)), budget)
		ext := []string{"odex", "vdex", "art"}[i%3]
		buf := soBlob(g.rng, g.words, int(n))
		if i%25 == 7 {
			p := g.nextPlant()
			copy(buf[len(buf)/2:], "\x00"+p+"\x00")
		}
		if err := g.write(fmt.Sprintf("%s/app/Odex%d/oat/arm64/Odex%d.%s", g.part(), i/3, i/3, ext), func(w io.Writer) error {
			_, err := w.Write(buf)
			return err
		}); err != nil {
			return err
		}
		budget -= n
	}
	return nil
}

func (g *gen) firmware(budget int64) error {
	buf := make([]byte, 32<<20)
	for i := 0; budget > 0; i++ {
		n := min(int64(1<<20+g.rng.IntN(31<<20)), budget)
		fillRandom(g.rng, buf[:n])
		if err := g.write(fmt.Sprintf("vendor/firmware/fw%d.bin", i), func(w io.Writer) error {
			_, err := w.Write(buf[:n])
			return err
		}); err != nil {
			return err
		}
		budget -= n
	}
	return nil
}

// text writes many small props, permission XMLs, init scripts and configs.
func (g *gen) text(budget int64) error {
	for i := 0; budget > 0; i++ {
		var b strings.Builder
		target := 200 + g.rng.IntN(16<<10)
		part := g.part()
		var name string
		switch i % 4 {
		case 0:
			name = fmt.Sprintf("%s/etc/permissions/privapp-permissions-%d.xml", part, i)
			b.WriteString("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<permissions>\n")
			for b.Len() < target {
				fmt.Fprintf(&b, "    <privapp-permissions package=\"%s\">\n        <permission name=\"android.permission.%s\"/>\n    </privapp-permissions>\n",
					g.words[g.rng.IntN(len(g.words))], strings.ToUpper(g.words[g.rng.IntN(len(g.words))]))
			}
			b.WriteString("</permissions>\n")
		case 1:
			name = fmt.Sprintf("%s/etc/prop.d/%d.prop", part, i)
			for b.Len() < target {
				fmt.Fprintf(&b, "ro.%s.%s=%d\n", g.words[g.rng.IntN(len(g.words))], g.words[g.rng.IntN(len(g.words))], g.rng.IntN(1000))
			}
		case 2:
			name = fmt.Sprintf("%s/etc/init/svc%d.rc", part, i)
			for b.Len() < target {
				w := g.words[g.rng.IntN(len(g.words))]
				fmt.Fprintf(&b, "service %d_%d /system/bin/%s\n    class main\n    user system\n    group inet\n\n", i, b.Len(), strings.Trim(w, "L;/"))
			}
		default:
			name = fmt.Sprintf("%s/etc/config/conf%d.json", part, i)
			b.WriteString("{\n")
			for b.Len() < target {
				fmt.Fprintf(&b, "  %q: %q,\n", g.words[g.rng.IntN(len(g.words))], g.words[g.rng.IntN(len(g.words))])
			}
			b.WriteString("}\n")
		}
		s := b.String()
		if i%150 == 3 {
			s = strings.Replace(s, "\n", "\n# endpoint "+g.nextPlant()+"\n", 1)
		}
		if err := g.write(name, func(w io.Writer) error {
			_, err := io.WriteString(w, s)
			return err
		}); err != nil {
			return err
		}
		budget -= int64(len(s))
	}
	return g.write("system/build.prop", func(w io.Writer) error {
		_, err := io.WriteString(w, "ro.build.id=UKQ1.230917.001\nro.product.device=marble\nro.xiaomi.account.endpoint="+g.nextPlant()+"\n")
		return err
	})
}
