#!/usr/bin/env bash
# avb.sh — dm-verity hashtree generation: `romforge avb add-hashtree-footer` against
# `avbtool add_hashtree_footer --do_not_generate_fec` on identical copies of one image, in one run:
# wall time, speed-up (theirs/ours; the target is ≥ 5x), peak RSS, and a check that both wrote the same
# root digest (and the same bytes).
#   BENCH_AVB_SIZE   image size (default 512M; the issue's figure is 4G)
#   BENCH_AVB_HASH   hash algorithm (default sha256)
#   BENCH_DIR        work directory (default: a temp dir, removed afterwards; needs 2x the size free)
#   ROMFORGE         romforge binary (default: built into the work directory)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
size=${BENCH_AVB_SIZE:-512M}
hash=${BENCH_AVB_HASH:-sha256}
salt=5ea1ab1e5ea1ab1e5ea1ab1e5ea1ab1e5ea1ab1e5ea1ab1e5ea1ab1e5ea1ab1e
for t in avbtool openssl /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "avb bench: $t not installed (run shared/validators/install.sh; apt install time openssl)"; exit 1; }
done
work=${BENCH_DIR:-$(mktemp -d)}
[[ -n ${BENCH_DIR:-} ]] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
if [[ -z ${ROMFORGE:-} ]]; then
  CGO_ENABLED=0 go build -trimpath -o "$work/romforge" ./cmd/romforge
  ROMFORGE=$work/romforge
fi

bytes=$(numfmt --from=iec "${size%B}")
# Deterministic, incompressible content (AES-CTR keystream), so nothing can shortcut zero blocks.
openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 0 -in /dev/zero 2>/dev/null |
  head -c "$bytes" >"$work/ours.img" || true # openssl dies of SIGPIPE when head is done
[[ $(stat -c %s "$work/ours.img") == "$bytes" ]] || { echo "avb bench: could not make the input"; exit 1; }
cp "$work/ours.img" "$work/theirs.img"
sync # no dirty pages left for either tool to flush
cat "$work/ours.img" "$work/theirs.img" >/dev/null # warm the page cache for both sides

measure() { # CMD... → "wall_seconds maxrss_kib cpu_seconds"
  local log=$work/time.log
  /usr/bin/time -v -o "$log" "$@" >"$work/out.log" 2>"$work/err.log" || { cat "$work/out.log" "$work/err.log"; exit 1; }
  awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; w=s}
              /User time|System time/ {c+=$2}
              /Maximum resident set size/ {r=$2} END {print w, r, c}' "$log"
}

echo "input: $bytes bytes, $hash, $(nproc) CPUs, GOMAXPROCS=${GOMAXPROCS:-default}"
echo "load average: $(cut -d" " -f1-3 /proc/loadavg)"
read -r ow orss ocpu <<<"$(measure "$ROMFORGE" --quiet avb add-hashtree-footer "$work/ours.img" --partition-name system \
  --hash-algorithm "$hash" --salt "$salt")"
read -r tw trss tcpu <<<"$(measure avbtool add_hashtree_footer --image "$work/theirs.img" --partition_name system \
  --hash_algorithm "$hash" --salt "$salt" --do_not_generate_fec)"

printf "%-12s %10s %10s %10s %12s\n" tool "wall s" "MB/s" "CPU s" "peak RSS"
awk -v b="$bytes" -v ow="$ow" -v tw="$tw" -v orss="$orss" -v trss="$trss" -v oc="$ocpu" -v tc="$tcpu" 'BEGIN {
  printf "%-12s %10.2f %10.0f %10.2f %8.1f MiB\n", "romforge", ow, b / 1048576 / (ow > 0 ? ow : 1e-9), oc, orss / 1024
  printf "%-12s %10.2f %10.0f %10.2f %8.1f MiB\n", "avbtool", tw, b / 1048576 / (tw > 0 ? tw : 1e-9), tc, trss / 1024
  printf "speed-up (wall): %.1fx (target >= 5x); CPU time: %.1fx less\n", (ow > 0 ? tw / ow : 0), (oc > 0 ? tc / oc : 0) }'

root() { avbtool info_image --image "$1" | awk '/Root Digest:/ {print $3}'; }
ro=$(root "$work/ours.img")
rt=$(root "$work/theirs.img")
echo "root digest romforge: $ro"
echo "root digest avbtool:  $rt"
[[ -n $ro && $ro == "$rt" ]] || { echo "FAIL: root digests differ"; exit 1; }
cmp -s "$work/ours.img" "$work/theirs.img" && echo "images: byte-identical" || { echo "FAIL: images differ"; exit 1; }
