// Package cloudgen makes ROM trees with cloud components planted under randomized names and places,
// and decoys that hardening must leave byte-identical, for property tests of the audit-driven closure.
// A seed fixes everything, so a failing seed is a reproducible case.
//
// What is planted is shaped like what real ROMs carry, not like any list's entries: apps with random
// package names whose dex holds Xiaomi cloud SDK hosts, native daemons with random names holding those
// hosts and started by init services (in /system/etc/init, /vendor/etc/init and the boot ramdisk), native
// libraries, properties under random keys of the cloud property families or whose values name cloud
// hosts, and host literals in config files. The cloud host names are random labels under the real
// Xiaomi domains (xiaomi.com, xiaomi.net, miui.com, mi.com, …, as published by public DNS blocklists).
package cloudgen

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/romforge/romforge/android/apk"
	"github.com/romforge/romforge/fs/tree"
	"github.com/romforge/romforge/patches/miuitest"
)

// Epoch is every entry's time (reproducible images).
var Epoch = time.Unix(1700000000, 0).UTC()

// cloudSuffixes are real Xiaomi cloud, push and telemetry domains (unknownFalleN/xiaomi-dns-blocklist);
// planted hosts are random labels under them, so no exact name a list holds is used.
var cloudSuffixes = []string{
	"xiaomi.com", "xiaomi.net", "miui.com", "mi.com", "api.micloud.xiaomi.net", "xmpush.xiaomi.com",
	"xmpush.global.xiaomi.com", "msg.xiaomi.net", "intl.miui.com", "mi-idc.com", "chat.global.xiaomi.net",
}

// DecoyHosts are hosts hardening must never touch (Android's own connectivity check, Google, and names
// that merely resemble the families: miami.com ends in "mi.com" but is not under it).
var DecoyHosts = []string{"connectivitycheck.gstatic.com", "www.google.com", "time.android.com", "www.miami.com", "cloud.example.org", "mycloud.example.net"}

// propFamilies are key prefixes of the cloud property families the xiaomi sets name.
var propFamilies = []string{"persist.sys.xmsf.", "ro.miui.cloud.", "persist.sys.mipush.", "ro.xiaomi.cloud.", "persist.sys.micloud."}

// Planted is one planted cloud component.
type Planted struct {
	// Kind is apk, daemon, library, prop, config.
	Kind string
	// Path is the target path ("system/app/Abc/Abc.apk", "boot-ramdisk/sbin/xyz"); for props the file.
	Path string
	// Name is the package, the service, or the property key.
	Name string
	Host string
}

// ROM is a generated set of partition trees and what it holds.
type ROM struct {
	Seed  uint64
	Parts map[string]*tree.Mem
	// Planted must be gone or neutralized after hardening.
	Planted []Planted
	// DecoyFiles must be byte-identical after hardening (target paths).
	DecoyFiles []string
	// DecoyProps are key=value lines that must still be in their files (file → lines).
	DecoyProps map[string][]string
	// DecoyServices are init services (file → names) that must stay enabled.
	DecoyServices map[string][]string
	// HostsMissing says system/etc/hosts was left out (the hosts step must create it).
	HostsMissing bool
}

// Partitions lists the generated partitions: the five filesystem ones and the boot ramdisk.
var Partitions = []string{"system", "vendor", "product", "system_ext", "odm", "boot-ramdisk"}

type gen struct {
	r   *rand.Rand
	rom *ROM
	dir tree.Meta
}

const label = "u:object_r:system_file:s0"

// Generate makes the ROM for a seed.
func Generate(seed uint64) *ROM {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), rom: &ROM{Seed: seed, Parts: map[string]*tree.Mem{}, DecoyProps: map[string][]string{}, DecoyServices: map[string][]string{}}}
	g.dir = tree.Meta{Mode: fs.ModeDir | 0o755, ModTime: Epoch}
	for _, p := range Partitions {
		t := tree.NewMem()
		root := g.dir
		if p != "boot-ramdisk" {
			root.SetSELinux(label)
		}
		t.Put(".", root, nil)
		g.rom.Parts[p] = t
	}
	g.base()
	n := 2 + g.r.IntN(3)
	for i := 0; i < n; i++ {
		g.cloudApp()
		g.daemon()
	}
	g.familyApp()
	g.library()
	for i := 0; i < 2+g.r.IntN(3); i++ {
		g.prop()
	}
	g.config()
	for i := 0; i < 2; i++ {
		g.decoyApp()
		g.decoyDaemon()
	}
	g.decoyProps()
	g.decoyConfig()
	sort.Strings(g.rom.DecoyFiles)
	return g.rom
}

// Trees returns the partitions as trees.
func (r *ROM) Trees() map[string]tree.Tree {
	out := map[string]tree.Tree{}
	for k, v := range r.Parts {
		out[k] = v
	}
	return out
}

func (g *gen) word(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[g.r.IntN(len(letters))]
	}
	return string(b)
}

func (g *gen) name() string { return g.word(4 + g.r.IntN(6)) }

func (g *gen) pick(s []string) string { return s[g.r.IntN(len(s))] }

// cloudHost is a random host under a real cloud domain.
func (g *gen) cloudHost() string {
	h := g.name() + "." + g.pick(cloudSuffixes)
	if g.r.IntN(2) == 0 {
		h = g.word(3) + "." + h
	}
	return h
}

func (g *gen) meta(part string, mode fs.FileMode) tree.Meta {
	m := tree.Meta{Mode: mode, ModTime: Epoch}
	if part != "boot-ramdisk" {
		m.SetSELinux(label)
	}
	return m
}

// put writes a file, creating parents; p is a target path.
func (g *gen) put(p string, mode fs.FileMode, data []byte) {
	part, rel, _ := strings.Cut(p, "/")
	t := g.rom.Parts[part]
	dm := g.meta(part, fs.ModeDir|0o755)
	if err := t.MkdirAll(path.Dir(rel), dm); err != nil {
		panic(fmt.Sprintf("cloudgen: %s: %v", p, err))
	}
	if err := t.Put(rel, g.meta(part, mode), data); err != nil {
		panic(fmt.Sprintf("cloudgen: %s: %v", p, err))
	}
}

func (g *gen) get(p string) []byte {
	part, rel, _ := strings.Cut(p, "/")
	b, err := g.rom.Parts[part].ReadFile(rel)
	if err != nil {
		return nil
	}
	return b
}

func (g *gen) appendFile(p string, mode fs.FileMode, text string) {
	g.put(p, mode, append(g.get(p), text...))
}

// base is what every ROM has: build.prop files, init scripts, the ramdisk's init.
func (g *gen) base() {
	g.put("system/build.prop", 0o644, []byte("# begin build properties\nro.build.id=UKQ1.230917.001\nro.product.system.device=generic\ndalvik.vm.heapsize=512m\n"))
	g.put("vendor/build.prop", 0o644, []byte("ro.vendor.build.id=UKQ1.230917.001\n"))
	g.put("product/etc/build.prop", 0o644, []byte("ro.product.product.name=generic\n"))
	g.put("system_ext/etc/build.prop", 0o644, []byte("ro.system_ext.build.id=UKQ1.230917.001\n"))
	g.put("odm/etc/build.prop", 0o644, []byte("ro.odm.build.id=UKQ1.230917.001\n"))
	g.put("boot-ramdisk/init", 0o750, miuitest.ELF("/system/etc/init/hw/init.rc"))
	g.put("boot-ramdisk/init.rc", 0o750, []byte("import /init.${ro.hardware}.rc\n\non early-init\n    start ueventd\n"))
	g.put("boot-ramdisk/prop.default", 0o644, []byte("ro.secure=1\nro.debuggable=0\n"))
	g.put("system/etc/permissions/privapp-permissions-platform.xml", 0o644, []byte("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<permissions>\n</permissions>\n"))
	g.rom.HostsMissing = g.r.IntN(3) == 0
	if !g.rom.HostsMissing {
		hosts := "127.0.0.1       localhost\n::1             ip6-localhost\n"
		if g.r.IntN(2) == 0 {
			h := g.cloudHost()
			hosts += "47.88.1.2 " + h + "\n"
			g.rom.Planted = append(g.rom.Planted, Planted{Kind: "config", Path: "system/etc/hosts", Host: h})
		}
		g.put("system/etc/hosts", 0o644, []byte(hosts))
	} else {
		// The etc directory exists (it always does on real ROMs).
		g.put("system/etc/fstab.placeholder", 0o644, []byte("# none\n"))
	}
}

var appDirs = []string{"system/app", "system/priv-app", "product/app", "product/priv-app", "system_ext/priv-app", "system_ext/app"}

func (g *gen) cloudApp() {
	pkg := "com." + g.name() + "." + g.name()
	dir := g.name()
	dir = strings.ToUpper(dir[:1]) + dir[1:]
	host := g.cloudHost()
	p := g.pick(appDirs) + "/" + dir + "/" + dir + ".apk"
	g.put(p, 0o644, apk.Build(pkg, "", map[string][]byte{"classes.dex": miuitest.Dex("Lcom/"+g.name()+"/Push;", "https://"+host+"/v2/register")}))
	if g.r.IntN(2) == 0 {
		g.put(path.Dir(p)+"/oat/arm64/"+dir+".odex", 0o644, miuitest.ELF(host))
	}
	part, _, _ := strings.Cut(p, "/")
	perm := part + "/etc/permissions/privapp-permissions-" + g.name() + ".xml"
	g.put(perm, 0o644, []byte(fmt.Sprintf("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<permissions>\n    <privapp-permissions package=%q>\n        <permission name=\"android.permission.INTERNET\"/>\n    </privapp-permissions>\n</permissions>\n", pkg)))
	g.rom.Planted = append(g.rom.Planted, Planted{Kind: "apk", Path: p, Name: pkg, Host: host})
}

// familyApp plants an app whose package is in a cloud package family but holds no host at all.
func (g *gen) familyApp() {
	pkg := g.pick([]string{"com.miui.cloud", "com.xiaomi.xmsf", "com.xiaomi.micloud", "com.miui.analytics", "com.miui.msa"}) + "." + g.name()
	dir := "Fam" + g.name()
	p := g.pick(appDirs) + "/" + dir + "/" + dir + ".apk"
	g.put(p, 0o644, apk.Build(pkg, "", map[string][]byte{"classes.dex": miuitest.Dex("Lcom/x/Main;")}))
	g.rom.Planted = append(g.rom.Planted, Planted{Kind: "apk", Path: p, Name: pkg})
}

func (g *gen) daemon() {
	name := g.name()
	host := g.cloudHost()
	var bin, rc, exec string
	switch g.r.IntN(4) {
	case 0:
		bin, rc, exec = "system/bin/"+name, "system/etc/init/"+g.name()+".rc", "/system/bin/"+name
	case 1:
		bin, rc, exec = "vendor/bin/"+name, "vendor/etc/init/"+g.name()+".rc", "/vendor/bin/"+name
	case 2:
		bin, rc, exec = "system_ext/bin/"+name, "system_ext/etc/init/"+g.name()+".rc", "/system_ext/bin/"+name
	default:
		bin, rc, exec = "boot-ramdisk/sbin/"+name, "boot-ramdisk/init."+g.name()+".rc", "/sbin/"+name
	}
	g.put(bin, 0o755, miuitest.ELF("https://"+host+"/report", "/data/"+name))
	svc := g.name() + "_" + g.word(3)
	g.appendFile(rc, 0o644, fmt.Sprintf("service %s %s --daemon\n    class main\n    user system\n    group inet\n\non property:sys.boot_completed=1\n    start %s\n\n", svc, exec, svc))
	g.rom.Planted = append(g.rom.Planted, Planted{Kind: "daemon", Path: bin, Name: svc, Host: host})
}

func (g *gen) library() {
	host := g.cloudHost()
	p := g.pick([]string{"system/lib64", "vendor/lib64", "product/lib64", "system/lib"}) + "/lib" + g.name() + ".so"
	g.put(p, 0o644, miuitest.ELF("https://"+host+"/sdk/config"))
	g.rom.Planted = append(g.rom.Planted, Planted{Kind: "library", Path: p, Host: host})
}

var propFiles = []string{"system/build.prop", "vendor/build.prop", "product/etc/build.prop", "system_ext/etc/build.prop", "odm/etc/build.prop", "boot-ramdisk/prop.default"}

func (g *gen) prop() {
	f := g.pick(propFiles)
	if g.r.IntN(2) == 0 {
		key := g.pick(propFamilies) + g.name()
		g.appendFile(f, 0o644, key+"="+g.pick([]string{"true", "1", "0", g.name()})+"\n")
		g.rom.Planted = append(g.rom.Planted, Planted{Kind: "prop", Path: f, Name: key})
		return
	}
	host := g.cloudHost()
	key := g.pick([]string{"persist.vendor.", "ro.", "persist.sys."}) + g.name() + "." + g.pick([]string{"url", "server", "endpoint", "host"})
	g.appendFile(f, 0o644, key+"=https://"+host+"/"+g.name()+"\n")
	g.rom.Planted = append(g.rom.Planted, Planted{Kind: "prop", Path: f, Name: key, Host: host})
}

func (g *gen) config() {
	host := g.cloudHost()
	var p string
	var body string
	switch g.r.IntN(3) {
	case 0:
		p = "system/etc/" + g.name() + ".conf"
		body = "# service configuration\nserver = " + host + "\nport = 443\n"
	case 1:
		p = "vendor/etc/" + g.name() + ".xml"
		body = "<?xml version=\"1.0\"?>\n<config>\n    <endpoint url=\"https://" + host + "/api\"/>\n</config>\n"
	default:
		p = "product/etc/" + g.name() + ".json"
		body = "{\"report\": \"https://" + host + "/collect\", \"interval\": 3600}\n"
	}
	g.put(p, 0o644, []byte(body))
	g.rom.Planted = append(g.rom.Planted, Planted{Kind: "config", Path: p, Host: host})
}

// ---- decoys ------------------------------------------------------------------------------------

func (g *gen) decoyApp() {
	pkg := "org." + g.name() + "." + g.name()
	dir := "Keep" + g.name()
	p := g.pick(appDirs) + "/" + dir + "/" + dir + ".apk"
	g.put(p, 0o644, apk.Build(pkg, "", map[string][]byte{"classes.dex": miuitest.Dex("https://"+g.pick(DecoyHosts)+"/generate_204", "micloud_sync_settings", "xiaomi")}))
	g.rom.DecoyFiles = append(g.rom.DecoyFiles, p)
}

func (g *gen) decoyDaemon() {
	name := "keep" + g.name()
	part := g.pick([]string{"system", "vendor"})
	bin := part + "/bin/" + name
	g.put(bin, 0o755, miuitest.ELF("https://"+g.pick(DecoyHosts)+"/", "/data/misc/"+name, "micloud"))
	rc := part + "/etc/init/keep" + g.name() + ".rc"
	svc := name + "_d"
	g.put(rc, 0o644, []byte(fmt.Sprintf("service %s /%s --check %s\n    class main\n", svc, bin, g.pick(DecoyHosts))))
	g.rom.DecoyFiles = append(g.rom.DecoyFiles, bin, rc)
	g.rom.DecoyServices[rc] = append(g.rom.DecoyServices[rc], svc)
}

func (g *gen) decoyProps() {
	for i := 0; i < 3; i++ {
		f := g.pick(propFiles)
		var line string
		switch i {
		case 0:
			line = "persist.sys." + g.name() + ".cloud_backup=" + g.pick([]string{"true", "false"})
		case 1:
			line = "ro." + g.name() + ".url=https://" + g.pick(DecoyHosts) + "/"
		default:
			line = "ro.vendor.cloudflare." + g.name() + "=1"
		}
		g.appendFile(f, 0o644, line+"\n")
		g.rom.DecoyProps[f] = append(g.rom.DecoyProps[f], line)
	}
}

func (g *gen) decoyConfig() {
	p := "system/etc/" + "keep" + g.name() + ".conf"
	var b bytes.Buffer
	for _, h := range DecoyHosts {
		fmt.Fprintf(&b, "probe = https://%s/\n", h)
	}
	g.put(p, 0o644, b.Bytes())
	g.rom.DecoyFiles = append(g.rom.DecoyFiles, p)
}
