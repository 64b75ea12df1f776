package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// examples are shown under EXAMPLES in each command's --help (TestHelpExamples checks that every command
// has some and that their flags exist).
var examples = map[string][]string{
	"audit":                   {"romforge audit extracted/system", "romforge audit bundle/images/system.img --set xiaomi-hardened --json"},
	"avb":                     {"romforge avb verify vbmeta.img --key key.pem"},
	"avb add-hashtree-footer": {"romforge avb add-hashtree-footer system.img --partition-name system --partition-size 3G --key key.pem"},
	"avb add-hash-footer":     {"romforge avb add-hash-footer boot.img --partition-name boot --partition-size 64M"},
	"avb verify":              {"romforge avb verify vbmeta.img", "romforge avb verify vbmeta.img --key testkey.avbpubkey --images out/"},
	"avb extract-public-key":  {"romforge avb extract-public-key key.pem -o key.avbpubkey"},
	"boot":                    {"romforge boot unpack boot.img -o boot/", "romforge boot repack boot/ -o boot-new.img"},
	"boot unpack":             {"romforge boot unpack boot.img -o boot/"},
	"boot repack":             {"romforge boot repack boot/ -o boot-new.img"},
	"build": {"romforge build --device armani --input lineage-14.1-armani.zip -o armani-bundle",
		"romforge build --device alioth --release --set xiaomi-hardened -o alioth-bundle --json",
		"romforge build --device alioth --input rom.zip --verity resign --key avb.pem -o out --force"},
	"ci":               {"romforge ci matrix --devices alioth --devices lavender"},
	"ci matrix":        {"romforge ci matrix", "romforge ci matrix --devices alioth --devices lavender", "romforge ci matrix --devices alioth,lavender"},
	"completion":       {"romforge completion bash > /etc/bash_completion.d/romforge", "romforge completion zsh"},
	"demo":             {"romforge demo", "romforge demo --keep /tmp/romforge-demo"},
	"devices":          {"romforge devices", "romforge devices show 'redmi 1s' --json"},
	"devices show":     {"romforge devices show armani", "romforge devices show 'POCO F3' --json"},
	"devices table":    {"romforge devices table vayu --serial 0123abcd -o ~/.config/romforge/devices/vayu-table.yaml", "romforge devices table begonia --getvar getvar-all.txt", "romforge devices table begonia --getvar - --json"},
	"doctor":           {"romforge doctor", "romforge doctor --json"},
	"emulate":          {"romforge emulate --device alioth --listen tcp:127.0.0.1:5554 --state /tmp/phone", "romforge emulate --device armani --listen udp:127.0.0.1:5554 --state /tmp/phone --locked"},
	"fastboot":         {"romforge fastboot devices", "romforge fastboot getvar product --serial tcp:127.0.0.1:5554"},
	"fastboot getvar":  {"romforge fastboot getvar all", "romforge fastboot getvar product --serial tcp:127.0.0.1:5554"},
	"fastboot devices": {"romforge fastboot devices", "romforge fastboot devices --json"},
	"fastboot flash":   {"romforge fastboot flash boot boot.img", "romforge fastboot flash system system.img --serial tcp:127.0.0.1:5554"},
	"fastboot reboot":  {"romforge fastboot reboot", "romforge fastboot reboot bootloader"},
	"fetch":            {"romforge fetch --device alioth", "romforge fetch --url https://example.org/rom.zip --sha256 HEX -o downloads/"},
	"flash": {"romforge flash armani-bundle --dry-run", "romforge flash armani-bundle --serial tcp:127.0.0.1:5554 --yes",
		"romforge flash boot=boot.img system=system.img --device armani"},
	"fs":               {"romforge fs ls system.img /system/app", "romforge fs extract system.img tree/"},
	"fs ls":            {"romforge fs ls system.img", "romforge fs ls system.img /system/etc --recursive --json"},
	"fs cat":           {"romforge fs cat system.img /system/build.prop"},
	"fs extract":       {"romforge fs extract system.img tree/"},
	"fs build":         {"romforge fs build tree/ system.img --type erofs --compress lz4hc", "romforge fs build tree/ system.img --shrink --fs-config fs_config --file-contexts file_contexts"},
	"inspect":          {"romforge inspect rom.zip", "romforge inspect super.img --json"},
	"patch":            {"romforge patch tree/ --set xiaomi-hardened", "romforge patch system.img --set xiaomi-cloud -o system-patched.img --dry-run"},
	"patches":          {"romforge patches list", "romforge patches show xiaomi-hardened"},
	"patches list":     {"romforge patches list", "romforge patches list --json"},
	"patches show":     {"romforge patches show xiaomi-hardened", "romforge patches show my-set.yaml --json"},
	"releases":         {"romforge releases --device alioth", "romforge releases --device armani --pre --json"},
	"sparse":           {"romforge sparse to-raw system.sparse.img system.img"},
	"sparse to-raw":    {"romforge sparse to-raw system.sparse.img system.img"},
	"sparse to-sparse": {"romforge sparse to-sparse system.img system.sparse.img"},
	"sparse split":     {"romforge sparse split super.img --max 256M -o pieces/"},
	"unpack":           {"romforge unpack rom.zip -o out/", "romforge unpack rom.zip -o out/ --partitions system --partitions vendor", "romforge unpack rom.zip -o out/ --partitions boot,system", "romforge unpack delta.zip -o new/ --old old/"},
	"vbmeta":           {"romforge vbmeta patch vbmeta.img vbmeta-off.img --disable-verity --disable-verification"},
	"vbmeta patch":     {"romforge vbmeta patch vbmeta.img vbmeta-off.img --disable-verity --disable-verification"},
	"vbmeta sign":      {"romforge vbmeta sign --key key.pem --include-descriptors-from-image boot.img -o vbmeta.img"},
	"version":          {"romforge version", "romforge version --json"},
}

// addExamples appends each command's EXAMPLES to its help.
func addExamples(prefix string, cs []*cli.Command) {
	for _, c := range cs {
		name := strings.TrimSpace(prefix + " " + c.Name)
		if ex := examples[name]; len(ex) > 0 && c.CustomHelpTemplate == "" {
			tmpl := cli.CommandHelpTemplate
			if len(c.Subcommands) > 0 {
				tmpl = cli.SubcommandHelpTemplate
			}
			c.CustomHelpTemplate = strings.TrimRight(tmpl, "\n") + "\n\nEXAMPLES:\n   " + strings.Join(ex, "\n   ") + "\n"
		}
		addExamples(name, c.Subcommands)
	}
}
