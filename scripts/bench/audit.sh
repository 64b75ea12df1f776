#!/usr/bin/env bash
# Audit speed: `romforge audit DIR --set xiaomi-hardened --json` against `grep -rFaf hostnames.txt DIR`
# on the same ROM-shaped tree, in one run. Target (issue 7): romforge ≤ 1.0× grep's wall time.
#
# romforge does strictly more work than grep here: it inflates every deflated zip/APK/JAR entry (dex) and
# scans the inflated bytes, matches case-insensitively with hostname boundary rules, reads APK manifests
# for package names, and treats hosts files specially. grep only sees the compressed bytes of deflated
# entries, and matches case-sensitively.
#
#   BENCH_AUDIT_SIZE   tree size (default 512M; the issue's target is 2G or more)
#   BENCH_AUDIT_DIR    where the temp dir goes (default /tmp)
#   BENCH_AUDIT_RUNS   timed runs per tool and cache state (default 2)
#   BENCH_AUDIT_KEEP=1 keep the generated tree
#   ROMFORGE           a romforge binary to use instead of building one
#
# The tree is generated (untimed) by scripts/bench/auditgen. When run as root, the page cache is dropped
# before each "cold" run; the "warm" runs follow a run of the same tool. Peak RSS comes from GNU time.
set -euo pipefail

cd "$(dirname "$0")/../.."
size=${BENCH_AUDIT_SIZE:-512M}
runs=${BENCH_AUDIT_RUNS:-2}
work=$(mktemp -d "${BENCH_AUDIT_DIR:-/tmp}/romforge-audit-bench.XXXXXX")
if [[ -z ${BENCH_AUDIT_KEEP:-} ]]; then
	trap 'rm -rf "$work"' EXIT
fi

if [[ ! -x /usr/bin/time ]]; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		apt-get install -y time >/dev/null 2>&1 || true
	fi
fi
have_time=0
[[ -x /usr/bin/time ]] && have_time=1

bin=${ROMFORGE:-}
if [[ -z $bin ]]; then
	bin=$work/romforge
	go build -o "$bin" ./cmd/romforge
fi
go build -o "$work/auditgen" ./scripts/bench/auditgen

echo "== generating a ${size} ROM-shaped tree under $work (untimed)"
"$work/auditgen" -o "$work/rom" -size "$size" -hosts "$work/hostnames.txt" -planted "$work/planted.txt"
echo "tree: $(du -sh "$work/rom" | cut -f1), $(find "$work/rom" -type f | wc -l) files; $(wc -l <"$work/hostnames.txt") patterns for grep"
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

can_drop=0
if [[ $(id -u) == 0 ]] && sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
	can_drop=1
fi

# measure NAME CACHE CMD...: run CMD with stdout to a file; print wall, CPU and peak RSS.
declare -A wall cpu
measure() {
	local name=$1 cache=$2
	shift 2
	if [[ $cache == cold ]]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches
	fi
	local out=$work/$name.out tm=$work/$name.time rc=0
	if ((have_time)); then
		/usr/bin/time -v -o "$tm" "$@" >"$out" 2>"$work/$name.err" || rc=$?
		local e u s rss
		e=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); t=0; for(i=1;i<=n;i++) t=t*60+a[i]; print t}' "$tm")
		u=$(awk -F': ' '/User time/ {print $2}' "$tm")
		s=$(awk -F': ' '/System time/ {print $2}' "$tm")
		rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$tm")
		local c
		c=$(echo "$u + $s" | bc)
		cpu[$name.$cache]="${cpu[$name.$cache]:-} $c"
		printf '%-9s %-5s wall %7.2f s  cpu %6.2f s (user %s + sys %s)  peak RSS %7d KiB  exit %d\n' "$name" "$cache" "$e" "$c" "$u" "$s" "$rss" "$rc"
	else
		local t0 t1
		t0=$(date +%s.%N)
		"$@" >"$out" 2>"$work/$name.err" || rc=$?
		t1=$(date +%s.%N)
		e=$(echo "$t1 - $t0" | bc)
		printf '%-9s %-5s wall %7.2f s  (install GNU time for CPU and RSS)  exit %d\n' "$name" "$cache" "$e" "$rc"
	fi
	wall[$name.$cache]="${wall[$name.$cache]:-} $e"
}

caches=(warm)
((can_drop)) && caches=(cold warm)
((can_drop)) || echo "(cannot drop the page cache: not root; reporting warm runs only)"
for cache in "${caches[@]}"; do
	echo "== $cache page cache"
	for ((i = 0; i < runs; i++)); do
		# grep's stdout must not be /dev/null: GNU grep then stops at the first match.
		measure grep "$cache" env LC_ALL=C grep -rFaf "$work/hostnames.txt" "$work/rom"
		measure romforge "$cache" "$bin" audit "$work/rom" --set xiaomi-hardened --json
	done
done

# romforge must have found every planted endpoint (its exit status is 1 when it finds anything).
missing=0
while read -r h; do
	if ! grep -qF "\"match\": \"$h\"" "$work/romforge.out"; then
		echo "MISSING from romforge audit: $h"
		missing=1
	fi
done <"$work/planted.txt"
findings=$(grep -c '"kind":' "$work/romforge.out" || true)
echo "romforge: $findings findings, all $(wc -l <"$work/planted.txt") planted hostnames found: $([[ $missing == 0 ]] && echo yes || echo NO)"
echo "grep: $(wc -c <"$work/grep.out") bytes of matching lines"

best() { tr ' ' '\n' | grep . | sort -g | head -1; }
for cache in "${caches[@]}"; do
	g=$(echo "${wall[grep.$cache]}" | best)
	r=$(echo "${wall[romforge.$cache]}" | best)
	printf 'wall ratio (%s, best of %d): romforge %.2f s / grep %.2f s = %.2f× (target ≤ 1.0×)\n' "$cache" "$runs" "$r" "$g" "$(echo "$r / $g" | bc -l)"
	if ((have_time)); then
		# CPU time is steadier than wall time on a shared machine; grep uses one core, romforge all.
		g=$(echo "${cpu[grep.$cache]}" | best)
		r=$(echo "${cpu[romforge.$cache]}" | best)
		printf 'cpu ratio  (%s, best of %d): romforge %.2f s / grep %.2f s = %.2f×\n' "$cache" "$runs" "$r" "$g" "$(echo "$r / $g" | bc -l)"
	fi
done
exit $missing
