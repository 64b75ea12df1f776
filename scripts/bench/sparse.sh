#!/usr/bin/env bash
# sparse.sh — `romforge sparse to-sparse/to-raw` against AOSP img2simg/simg2img on the same input, in
# one run: wall time, ratio (ours/theirs, ≤ 1.0 is the target) and peak RSS, plus byte checks.
#   BENCH_SPARSE_SIZE   size of the generated mixed raw image (default 256M; e.g. 1G, 2G)
#   BENCH_DIR           work directory (default: a temp dir, removed afterwards)
#   ROMFORGE            romforge binary (default: built into the work directory)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
size=${BENCH_SPARSE_SIZE:-256M}
for t in img2simg simg2img python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "sparse bench: $t not installed (apt install android-sdk-libsparse-utils time)"; exit 1; }
done
work=${BENCH_DIR:-$(mktemp -d)}
[[ -n ${BENCH_DIR:-} ]] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
if [[ -z ${ROMFORGE:-} ]]; then
  CGO_ENABLED=0 go build -trimpath -o "$work/romforge" ./cmd/romforge
  ROMFORGE=$work/romforge
fi

# A deterministic mixed image: random data, zero runs, 0xff runs, repeated words, near-uniform blocks.
python3 - "$work/in.raw" "$size" <<'PY'
import random, struct, sys
path, s = sys.argv[1], sys.argv[2].upper()
mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1], 1)
size = int(s.rstrip("KMG")) * mult
r = random.Random(4)
with open(path, "wb") as f:
    left = size
    while left > 0:
        n = min(left, r.randint(1, 512) * 4096 + (r.randrange(4096) if r.random() < 0.05 else 0))
        kind = r.random()
        if kind < 0.45:
            f.write(r.randbytes(n))
        elif kind < 0.75:
            f.write(bytes(n))
        elif kind < 0.85:
            f.write(b"\xff" * n)
        elif kind < 0.95:
            f.write((struct.pack("<I", r.getrandbits(32)) * (n // 4 + 1))[:n])
        else:
            b = bytearray(n)
            for i in range(0, n, 4096):
                b[i + r.randrange(min(4096, n - i))] = 1
            f.write(b)
        left -= n
PY
cat "$work/in.raw" >/dev/null # warm the page cache for both sides

# measure NAME CMD... → prints "seconds maxrss_kib"
measure() {
  local log=$work/time.log
  /usr/bin/time -v -o "$log" "$@" >/dev/null 2>"$work/err.log" || { cat "$work/err.log"; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  echo "$wall $rss"
}

row() { # op ours theirs
  read -r ow orss <<<"$2"
  read -r tw trss <<<"$3"
  awk -v op="$1" -v ow="$ow" -v tw="$tw" -v orss="$orss" -v trss="$trss" 'BEGIN {
    printf "%-10s %9.3fs %9.3fs %7.2fx %9.1f MiB %9.1f MiB\n", op, ow, tw, (tw > 0 ? ow / tw : 0), orss / 1024, trss / 1024 }'
}

echo "input: $(stat -c %s "$work/in.raw") bytes mixed raw image"
printf "%-10s %10s %10s %8s %13s %13s\n" op romforge libsparse ratio "rss ours" "rss theirs"
ts_ours=$(measure "$ROMFORGE" --quiet sparse to-sparse "$work/in.raw" "$work/ours.simg")
ts_theirs=$(measure img2simg "$work/in.raw" "$work/theirs.simg")
row to-sparse "$ts_ours" "$ts_theirs"
tr_ours=$(measure "$ROMFORGE" --quiet sparse to-raw "$work/theirs.simg" "$work/ours.raw")
tr_theirs=$(measure simg2img "$work/theirs.simg" "$work/theirs.raw")
row to-raw "$tr_ours" "$tr_theirs"

cmp -s "$work/ours.simg" "$work/theirs.simg" && echo "check: to-sparse output ≡ img2simg output" || echo "check: to-sparse output DIFFERS from img2simg ($(stat -c %s "$work/ours.simg") vs $(stat -c %s "$work/theirs.simg") bytes)"
cmp -s "$work/ours.raw" "$work/theirs.raw" && echo "check: to-raw output ≡ simg2img output" || { echo "check: to-raw output DIFFERS from simg2img"; exit 1; }
