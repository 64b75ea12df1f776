// Package miuitest makes a small MIUI-like ROM tree for tests, benchmarks and `romforge demo`: real APKs
// (zips with binary AndroidManifest.xml), dex files and native libraries carrying Xiaomi endpoint strings,
// permission/sysconfig XML, props, hosts and init scripts — the things the Xiaomi patch sets remove and
// the audit looks for.
package miuitest

import (
	"fmt"
	"io/fs"
	"time"

	"github.com/romforge/romforge/android/apk"
	"github.com/romforge/romforge/fs/tree"
)

// Planted lists what Tree plants that the xiaomi-hardened set must remove, for tests to check.
var Planted = struct {
	Packages []string
	Hosts    []string
}{
	Packages: []string{"com.xiaomi.xmsf", "com.miui.cloudservice", "com.xiaomi.finddevice", "com.miui.msa.global", "com.miui.analytics", "com.miui.daemon", "com.xiaomi.account"},
	Hosts:    []string{"api.xmpush.xiaomi.com", "resolver.msg.xiaomi.net", "api.micloud.xiaomi.net", "find.api.micloud.xiaomi.net", "sdkconfig.ad.intl.xiaomi.com", "data.mistat.intl.xiaomi.com", "account.xiaomi.com", "i.mi.com", "tracking.intl.miui.com"},
}

// Kept are packages Tree contains that no Xiaomi set touches.
var Kept = []string{"com.android.calculator2", "com.android.settings"}

// Epoch is the fixed time of every entry (reproducible images).
var Epoch = time.Unix(1700000000, 0).UTC()

const label = "u:object_r:system_file:s0"

// Dex returns bytes shaped like a dex file whose string table holds the given strings.
func Dex(strs ...string) []byte {
	b := []byte("dex\n035\x00")
	b = append(b, make([]byte, 104)...)
	for _, s := range strs {
		b = append(b, byte(len(s)))
		b = append(b, s...)
		b = append(b, 0)
	}
	return b
}

// ELF returns bytes shaped like an ELF shared library whose .rodata holds the given strings.
func ELF(strs ...string) []byte {
	b := []byte("\x7fELF\x02\x01\x01\x00")
	b = append(b, make([]byte, 56)...)
	for _, s := range strs {
		b = append(b, s...)
		b = append(b, 0)
	}
	return append(b, make([]byte, 64)...)
}

// Options size the tree.
type Options struct {
	// Padding adds a file of this many bytes to system/lib (compressible text) to make images bigger.
	Padding int
}

// Partitions returns the MIUI-like partitions: "system" (with app, priv-app, etc, framework) and "vendor".
func Partitions(opt Options) map[string]*tree.Mem {
	sys := tree.NewMem()
	ven := tree.NewMem()
	dir := tree.Meta{Mode: fs.ModeDir | 0o755, ModTime: Epoch}
	dir.SetSELinux(label)
	file := tree.Meta{Mode: 0o644, ModTime: Epoch}
	file.SetSELinux(label)
	exe := tree.Meta{Mode: 0o755, ModTime: Epoch, GID: 2000}
	exe.SetSELinux("u:object_r:system_file:s0")
	root := dir
	sys.Put(".", root, nil)
	ven.Put(".", root, nil)
	mk := func(t *tree.Mem, p string) {
		if err := t.MkdirAll(p, dir); err != nil {
			panic(err)
		}
	}
	put := func(t *tree.Mem, p string, m tree.Meta, data []byte) {
		mk(t, parent(p))
		if err := t.Put(p, m, data); err != nil {
			panic(fmt.Sprintf("miuitest: %s: %v", p, err))
		}
	}
	app := func(dirp, name, pkg, overlay string, extra map[string][]byte) {
		put(sys, dirp+"/"+name+".apk", file, apk.Build(pkg, overlay, extra))
	}
	app("app/XMSF", "XMSF", "com.xiaomi.xmsf", "", map[string][]byte{
		"classes.dex":             Dex("Lcom/xiaomi/push/service/XMPushService;", "https://api.xmpush.xiaomi.com/v2/register", "resolver.msg.xiaomi.net"),
		"lib/arm64-v8a/libxmp.so": ELF("register.xmpush.xiaomi.com"),
	})
	put(sys, "app/XMSF/oat/arm64/XMSF.odex", file, ELF("api.xmpush.xiaomi.com"))
	put(sys, "app/XMSF/lib/arm64/libmipush.so", file, ELF("api.xmpush.xiaomi.com", "resolver.msg.xiaomi.net"))
	app("priv-app/MiCloudSync", "MiCloudSync", "com.miui.cloudservice", "", map[string][]byte{
		"classes.dex": Dex("https://api.micloud.xiaomi.net/mic/status", "https://i.mi.com/"),
	})
	app("priv-app/XiaomiAccount", "XiaomiAccount", "com.xiaomi.account", "", map[string][]byte{
		"classes.dex": Dex("https://account.xiaomi.com/pass/serviceLogin"),
	})
	app("priv-app/FindDevice", "FindDevice", "com.xiaomi.finddevice", "", map[string][]byte{
		"classes.dex": Dex("https://find.api.micloud.xiaomi.net/mic/find/v2/"),
	})
	app("app/MSA", "MSA", "com.miui.msa.global", "", map[string][]byte{
		"classes.dex": Dex("https://sdkconfig.ad.intl.xiaomi.com/api/v4/detail/config"),
	})
	app("app/AnalyticsCore", "AnalyticsCore", "com.miui.analytics", "", map[string][]byte{
		"classes.dex":  Dex("Lcom/miui/analytics/Analytics;"),
		"classes2.dex": Dex("https://data.mistat.intl.xiaomi.com/mistats/v3", "https://tracking.intl.miui.com/track/v4"),
	})
	app("app/Calculator", "Calculator", "com.android.calculator2", "", map[string][]byte{"classes.dex": Dex("Lcom/android/calculator2/Calculator;")})
	app("priv-app/Settings", "Settings", "com.android.settings", "", map[string][]byte{"classes.dex": Dex("https://www.android.com/")})
	app("overlay/MiCloudOverlay", "MiCloudOverlay", "com.miui.cloudservice.overlay", "com.miui.cloudservice", nil)
	// The flat, pre-Lollipop layout: app/Foo.apk with Foo.odex beside it.
	put(sys, "app/MiuiDaemon.apk", file, apk.Build("com.miui.daemon", "", map[string][]byte{"classes.dex": Dex("https://data.mistat.xiaomi.com/")}))
	put(sys, "app/MiuiDaemon.odex", file, ELF("data.mistat.xiaomi.com"))
	put(sys, "etc/permissions/privapp-permissions-miui.xml", file, []byte(`<?xml version="1.0" encoding="utf-8"?>
<!-- MIUI privileged permission allowlist (sample) -->
<permissions>
    <privapp-permissions package="com.xiaomi.xmsf">
        <permission name="android.permission.RECEIVE_BOOT_COMPLETED"/>
        <permission name="android.permission.INTERACT_ACROSS_USERS"/>
    </privapp-permissions>
    <privapp-permissions package="com.android.settings">
        <permission name="android.permission.MANAGE_USERS"/>
    </privapp-permissions>
    <privapp-permissions package="com.miui.cloudservice">
        <permission name="android.permission.READ_CONTACTS"/>
        <permission name="android.permission.GET_ACCOUNTS_PRIVILEGED"/>
    </privapp-permissions>
</permissions>
`))
	put(sys, "etc/permissions/com.xiaomi.xmsf.xml", file, []byte(`<?xml version="1.0" encoding="utf-8"?>
<permissions>
    <privapp-permissions package="com.xiaomi.xmsf">
        <permission name="android.permission.INTERNET"/>
    </privapp-permissions>
</permissions>
`))
	put(sys, "etc/sysconfig/miui-powersave.xml", file, []byte(`<?xml version="1.0" encoding="utf-8"?>
<config>
    <allow-in-power-save package="com.xiaomi.xmsf" />
    <allow-in-power-save package="com.android.settings" />
    <allow-in-data-usage-save package="com.miui.cloudservice" />
</config>
`))
	put(sys, "etc/default-permissions/default-permissions-miui.xml", file, []byte(`<?xml version="1.0" encoding="utf-8"?>
<exceptions>
    <exception package="com.xiaomi.finddevice">
        <permission name="android.permission.ACCESS_FINE_LOCATION" fixed="false"/>
    </exception>
</exceptions>
`))
	put(sys, "etc/hosts", file, []byte("127.0.0.1       localhost\n::1             ip6-localhost\n"))
	put(sys, "etc/init/micloud.rc", file, []byte(`# Mi Cloud sync helper
service micloud_sync /system/bin/micloud --endpoint https://api.micloud.xiaomi.net
    class main
    user system
    group inet

on property:sys.boot_completed=1
    start micloud_sync
`))
	put(sys, "etc/init/mqsasd.rc", file, []byte(`service mqsasd /system/bin/mqsasd
    class main
    user root
`))
	put(sys, "etc/init/keep.rc", file, []byte(`service netd_keep /system/bin/netd
    class main
`))
	put(sys, "build.prop", file, []byte(`# begin build properties
ro.build.id=UKQ1.230917.001
ro.product.device=marble
ro.product.brand=POCO
ro.build.fingerprint=POCO/marble_global/marble:14/UKQ1.230917.001/V816.0.5.0.UMRMIXM:user/release-keys
ro.miui.ui.version.name=V816
ro.xiaomi.account.endpoint=https://account.xiaomi.com/pass/serviceLogin
ro.xiaomi.cloud.endpoint=https://i.mi.com
persist.sys.mipush.enabled=true
dalvik.vm.heapsize=512m
# end build properties
`))
	put(sys, "bin/micloud", exe, ELF("/data/micloud"))
	put(sys, "bin/netd", exe, ELF("connectivitycheck.gstatic.com"))
	put(sys, "bin/mqsasd", exe, ELF("/data/mqsas"))
	put(sys, "lib64/libc++.so", file, ELF("libc++ sample"))
	if opt.Padding > 0 {
		pad := make([]byte, opt.Padding)
		for i := range pad {
			pad[i] = "the quick brown fox jumps over the lazy dog 0123456789\n"[i%55]
		}
		put(sys, "lib64/libpadding.so", file, pad)
	}
	put(ven, "build.prop", file, []byte("ro.vendor.build.id=UKQ1.230917.001\nro.vendor.product.device=marble\n"))
	put(ven, "etc/init/vendor.rc", file, []byte("service vendor_keep /vendor/bin/keep\n    class hal\n"))
	put(ven, "lib64/libqti-perf.so", file, ELF("perf config"))
	return map[string]*tree.Mem{"system": sys, "vendor": ven}
}

// Trees returns Partitions as tree.Trees.
func Trees(opt Options) map[string]tree.Tree {
	out := map[string]tree.Tree{}
	for k, v := range Partitions(opt) {
		out[k] = v
	}
	return out
}

func parent(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "."
}
