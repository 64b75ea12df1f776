#!/usr/bin/env bash
# build.sh — `romforge build` of a generated A/B payload ROM against `romforge unpack` of the same ROM, in
# one run: wall and CPU times, the ratio build/unpack (target ≤ 1.5: patching, repacking and packing super
# cost at most half of unpacking) and peak RSS (target ≤ 512 MiB), with the build's time per stage.
#   BENCH_BUILD_SIZE  bytes of file content in the generated ROM (default 512M; 5G makes a ROM of about 3.5 GiB,
#                     the issue's figure)
#   BENCH_DIR         work directory (default: a temp dir, removed afterwards); the ROM is kept there and
#                     reused when BENCH_DIR is given (rm it to regenerate). Needs about 4x the ROM size free.
#   ROMFORGE          romforge binary (default: built into the work directory)
# The ROM (scripts/bench/genrom): payload.bin with boot, vbmeta and EROFS lz4hc system, product, vendor,
# system_ext and odm (APK-like and library-like files, MIUI-like cloud apps planted), REPLACE_XZ where
# xz pays, REPLACE elsewhere. Generation is untimed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
size=${BENCH_BUILD_SIZE:-512M}
command -v /usr/bin/time >/dev/null || { echo "build bench: GNU time not installed (apt install time)"; exit 1; }
command -v xz >/dev/null || { echo "build bench: xz not installed (apt install xz-utils)"; exit 1; }
work=${BENCH_DIR:-$(mktemp -d)}
[[ -n ${BENCH_DIR:-} ]] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
export CGO_ENABLED=0
if [[ -z ${ROMFORGE:-} ]]; then
  go build -trimpath -o "$work/romforge" ./cmd/romforge
  ROMFORGE=$work/romforge
fi
rom=$work/rom-$size.zip
if [[ ! -s $rom ]]; then
  go build -trimpath -o "$work/genrom" ./scripts/bench/genrom
  "$work/genrom" -size "$size" -out "$rom" -work "$work/gen"
fi
rm -rf "$work/unpacked" "$work/bundle"
sync
cat "$rom" >/dev/null # warm the page cache: both sides read the ROM from memory

measure() { # CMD... → "wall_s cpu_s maxrss_kib"
  local log=$work/time.log
  /usr/bin/time -v -o "$log" "$@" >"$work/out.log" 2>"$work/err.log" || { cat "$work/out.log" "$work/err.log"; exit 1; }
  awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; w=s}
    /User time/ {u=$2} /System time/ {y=$2} /Maximum resident set size/ {r=$2}
    END {printf "%s %.2f %s\n", w, u+y, r}' "$log"
}

rom_bytes=$(stat -c %s "$rom")
echo "ROM: $rom_bytes bytes ($(numfmt --to=iec "$rom_bytes")), $(nproc) CPUs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r uw ucpu urss <<<"$(measure "$ROMFORGE" --quiet unpack "$rom" -o "$work/unpacked")"
unpacked=$(du -sb "$work/unpacked" | cut -f1)
rm -rf "$work/unpacked"
sync
read -r bw bcpu brss <<<"$(measure "$ROMFORGE" build --json --device alioth --input "$rom" --set xiaomi-hardened -o "$work/bundle")"
stages=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); t=d["timings_seconds"]; print(", ".join(f"{k} {v:.1f}s" for k,v in sorted(t.items())))' "$work/out.log" 2>/dev/null || echo "?")
rebuilt=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); m=d["manifest"]; print(", ".join([i["partition"] for i in m["images"] if i.get("modified")] + [p["partition"] for p in (m.get("super") or {}).get("partitions", []) if p.get("modified")]))' "$work/out.log" 2>/dev/null || echo "?")

printf '%-22s %9s %9s %12s\n' "" "wall s" "CPU s" "peak RSS"
printf '%-22s %9.2f %9.2f %8.1f MiB\n' "romforge unpack" "$uw" "$ucpu" "$(awk -v k="$urss" 'BEGIN{print k/1024}')"
printf '%-22s %9.2f %9.2f %8.1f MiB\n' "romforge build" "$bw" "$bcpu" "$(awk -v k="$brss" 'BEGIN{print k/1024}')"
echo "unpacked partitions: $unpacked bytes; rebuilt by the build: $rebuilt"
echo "build stages: $stages"
python3 - "$uw" "$bw" "$brss" "$rom_bytes" <<'PY'
import sys
uw, bw, rss, rom = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = bw / max(uw, 1e-9)
print(f"build/unpack: {r:.2f}x (target <= 1.5x): {'met' if r <= 1.5 else 'NOT met'}; peak RSS {rss/1024:.0f} MiB (target <= 512): {'met' if rss <= 512*1024 else 'NOT met'}")
if rom < 3 << 30:
    print(f"note: the ROM is {rom/(1<<30):.2f} GiB; the issue's figure needs >= 3 GiB (BENCH_BUILD_SIZE=5G)")
PY
