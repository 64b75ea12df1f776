#!/usr/bin/env bash
# payload.sh — `romforge unpack` of a full payload against the C decompressors doing only the decompression
# of the same operation blobs (xz -dc, bzip2 -dc, zstd -dc, one after another on one core), in one run:
# wall and CPU times, ratio (ours/theirs; the target is ≤ 1.0 on two cores) and peak RSS (target ≤ 256 MiB).
#   BENCH_PAYLOAD_SIZE   bytes of partitions in the generated payload (default 256M; the issue's target: 2G)
#   BENCH_XZ_PRESET      xz preset of the REPLACE_XZ blobs (default 6)
#   BENCH_WORKERS        romforge --workers (default 2)
#   BENCH_DIR            work directory (default: a temp dir, removed afterwards)
#   ROMFORGE             romforge binary (default: built into the work directory)
# The payload (one dominant partition; REPLACE_XZ half with the ARM64 BCJ filter, REPLACE_BZ, ZSTD,
# REPLACE, ZERO) is made by scripts/bench/genpayload with romforge's payload writer; generation is untimed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
size=${BENCH_PAYLOAD_SIZE:-256M}
workers=${BENCH_WORKERS:-2}
for t in xz bzip2 zstd /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "payload bench: $t not installed (apt install xz-utils bzip2 zstd time)"; exit 1; }
done
work=${BENCH_DIR:-$(mktemp -d)}
[[ -n ${BENCH_DIR:-} ]] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
export CGO_ENABLED=0
if [[ -z ${ROMFORGE:-} ]]; then
  go build -trimpath -o "$work/romforge" ./cmd/romforge
  ROMFORGE=$work/romforge
fi
go build -trimpath -o "$work/genpayload" ./scripts/bench/genpayload
if [[ ! -s $work/payload.bin ]]; then
  "$work/genpayload" -size "$size" -out "$work" -xz-preset "${BENCH_XZ_PRESET:-6}"
fi
cat "$work"/payload.bin "$work"/blobs.* >/dev/null # warm the page cache for both sides

# measure CMD... → "wall_s cpu_s maxrss_kib"
measure() {
  local log=$work/time.log
  /usr/bin/time -v -o "$log" "$@" >/dev/null 2>"$work/err.log" || { cat "$work/err.log"; exit 1; }
  awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; w=s}
    /User time/ {u=$2} /System time/ {y=$2} /Maximum resident set size/ {r=$2}
    END {printf "%s %.2f %s\n", w, u+y, r}' "$log"
}

c_decompress() { # the C tools on the dumped blobs, one after another, single-threaded
  xz -dc -T1 "$work/blobs.xz" >/dev/null
  bzip2 -dc "$work/blobs.bz2" >/dev/null
  zstd -dc -q "$work/blobs.zst" >/dev/null
}
export -f c_decompress
export work

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-28s %9s %9s %11s\n" what wall cpu "peak rss"
row() { read -r w c r <<<"$2"; awk -v n="$1" -v w="$w" -v c="$c" -v r="$r" 'BEGIN {printf "%-28s %8.2fs %8.2fs %7.1f MiB\n", n, w, c, r/1024}'; }
for t in xz bz2 zst; do
  case $t in xz) cmd=(xz -dc -T1) ;; bz2) cmd=(bzip2 -dc) ;; zst) cmd=(zstd -dc -q) ;; esac
  row "C ${cmd[0]} -dc (blobs.$t)" "$(measure "${cmd[@]}" "$work/blobs.$t")"
done
theirs=$(measure bash -c c_decompress)
row "C all, one core" "$theirs"
echo "romforge's Go decoders alone on the same blobs, one core (xz = ulikunitz/xz LZMA2 + our BCJ):"
"$work/genpayload" -decode "$work" | sed 's/^/  /'
rm -rf "$work/out1" "$work/out"
ours1=$(measure "$ROMFORGE" --quiet unpack "$work/payload.bin" -o "$work/out1" --workers 1)
row "romforge unpack --workers 1" "$ours1"
rm -rf "$work/out1"
ours=$(measure "$ROMFORGE" --quiet unpack "$work/payload.bin" -o "$work/out" --workers "$workers")
row "romforge unpack --workers $workers" "$ours"
read -r ow oc orss <<<"$ours"
read -r tw tc trss <<<"$theirs"
awk -v ow="$ow" -v tw="$tw" -v oc="$oc" -v tc="$tc" -v r="$orss" 'BEGIN {
  printf "ratio wall (romforge unpack / C decompression): %.2fx (target <= 1.0)\n", ow / tw
  printf "ratio cpu  (romforge unpack / C decompression): %.2fx\n", oc / tc
  printf "romforge peak RSS: %.1f MiB (target <= 256)\n", r / 1024 }'
grep -q '"verified": true' "$work/out/unpack.json" && echo "check: every partition verified against the manifest's SHA-256" || { echo "check: unpack.json does not say verified"; exit 1; }
