// Package layering holds the test that keeps romforge's packages in the order the README draws:
// fetch → unpack (image, rom) → patch (fs, patches) → repack and bundle (pipeline) → flash, with the CLI on
// top. A lower stage never imports a higher one, so each can be used and tested without what follows it.
package layering

import "strings"

// Rank orders the module's packages by the stage they serve; a package may import only packages of the
// same or a lower rank. The longest matching prefix wins.
var Rank = []struct {
	Prefix string
	Rank   int
}{
	{"internal/", 0}, {"progress", 0}, {"compress/", 0},
	{"devices", 1}, {"android/", 1}, {"image", 1},
	{"image/", 2}, {"fetch", 2},
	{"fs/", 3}, {"flash/plan", 3}, {"fs/erofs/lz4block", 0},
	{"rom", 4},
	{"patches", 5},
	{"bundle", 6}, {"pipeline", 6}, {"ci", 6},
	{"flash", 7},
	{"doctor", 8}, {"demo", 8}, {"scripts/", 8},
	{"cmd/", 9},
}

// RankOf returns the rank of a package path relative to the module, or -1 when no rule names it.
func RankOf(pkg string) int {
	best, rank := -1, -1
	for _, r := range Rank {
		dir := strings.TrimSuffix(r.Prefix, "/")
		match := pkg == r.Prefix || strings.HasPrefix(pkg, dir+"/")
		if match && len(r.Prefix) > best {
			best, rank = len(r.Prefix), r.Rank
		}
	}
	return rank
}

// Violations lists every import in graph (package → its direct imports, module-relative) that goes up
// a rank, and every package no rule names.
func Violations(graph map[string][]string) []string {
	var out []string
	for pkg, imps := range graph {
		rp := RankOf(pkg)
		if rp < 0 {
			out = append(out, pkg+": no layering rank (add it to layering.Rank)")
			continue
		}
		for _, imp := range imps {
			if ri := RankOf(imp); ri > rp {
				out = append(out, pkg+" imports "+imp+", a later stage")
			}
		}
	}
	return out
}
