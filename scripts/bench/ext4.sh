#!/usr/bin/env bash
# Benchmark: build the same generated tree with `romforge fs build --type ext4` and with `mke2fs -d`, in one
# run, and print wall times, the ratio (target ≤ 1.0× mke2fs) and peak RSS.
#
#   scripts/bench/ext4.sh                              # ~200 MiB, 5 000 files (under a minute)
#   BENCH_MB=1100 BENCH_FILES=22000 scripts/bench/ext4.sh  # the issue's size (≥ 1 GiB, ≥ 20 000 files)
#
# Env: BENCH_MB, BENCH_FILES, BENCH_DIR (work dir, default a temp dir), ROMFORGE_BIN (prebuilt binary).
set -euo pipefail
MB=${BENCH_MB:-200}
FILES=${BENCH_FILES:-5000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_DIR:-$(mktemp -d)}
trap '[ -z "${BENCH_DIR:-}" ] && rm -rf "$WORK"' EXIT
command -v mke2fs >/dev/null || { echo "mke2fs not installed (apt-get install e2fsprogs)"; exit 1; }
TIME=/usr/bin/time
[ -x $TIME ] || { echo "GNU time missing (apt-get install time)"; exit 1; }

BIN=${ROMFORGE_BIN:-$WORK/romforge}
if [ -z "${ROMFORGE_BIN:-}" ]; then
  (cd "$ROOT" && CGO_ENABLED=0 go build -o "$BIN" ./cmd/romforge)
fi

echo "generating $FILES files, ~$MB MiB in $WORK/src"
python3 - "$WORK/src" "$MB" "$FILES" <<'PY'
import os, random, sys
root, mb, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(42)
# Mixed sizes: many small files, some medium, a few large; half random, half compressible text.
weights = [rnd.choice([200, 2000, 20000, 20000, 200000, 2000000]) for _ in range(n)]
scale = mb * 1024 * 1024 / sum(weights)
chunk = os.urandom(4 << 20)
for i, w in enumerate(weights):
    d = os.path.join(root, "d%02d" % (i % 40), "s%d" % (i % 7))
    os.makedirs(d, exist_ok=True)
    size = max(1, int(w * scale * rnd.uniform(0.5, 1.5)))
    with open(os.path.join(d, "f%05d.bin" % i), "wb") as f:
        while size > 0:
            k = min(size, len(chunk))
            off = rnd.randrange(0, len(chunk) - k + 1)
            f.write(chunk[off:off + k] if i % 2 else (b"line of text %d\n" % i) * (k // 16 + 1))
            size -= k
    if i % 100 == 0:
        os.symlink("f%05d.bin" % i, os.path.join(d, "l%05d" % i))
PY
SRC_KB=$(du -sk "$WORK/src" | cut -f1)
SIZE_MB=$(( SRC_KB * 13 / 10 / 1024 + 64 ))
echo "tree: $(find "$WORK/src" -type f | wc -l) files, $((SRC_KB / 1024)) MiB; image size ${SIZE_MB} MiB"

run() { # name, command…
  local name=$1; shift
  sync
  $TIME -v "$@" 2>"$WORK/$name.time" >/dev/null || { cat "$WORK/$name.time"; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/$name.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/$name.time")
  echo "$name $wall $rss"
}
secs() { awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }' <<<"$1"; }

rm -f "$WORK/mke2fs.img" "$WORK/romforge.img"
M=$(run mke2fs env E2FSPROGS_FAKE_TIME=0 mke2fs -q -F -t ext4 -b 4096 -I 256 -O ^has_journal,^metadata_csum,^64bit \
      -d "$WORK/src" "$WORK/mke2fs.img" "${SIZE_MB}M")
R=$(run romforge "$BIN" fs build --quiet --type ext4 --size "${SIZE_MB}M" "$WORK/src" "$WORK/romforge.img")
e2fsck -fn "$WORK/romforge.img" >/dev/null || { echo "e2fsck found problems in romforge's image"; exit 1; }
read -r _ mw mr <<<"$M"
read -r _ rw rr <<<"$R"
ms=$(secs "$mw"); rs=$(secs "$rw")
printf '%-10s %10s %14s\n' tool "wall (s)" "peak RSS (KiB)"
printf '%-10s %10s %14s\n' mke2fs "$ms" "$mr"
printf '%-10s %10s %14s\n' romforge "$rs" "$rr"
awk -v r="$rs" -v m="$ms" 'BEGIN { if (m > 0) printf "ratio romforge/mke2fs: %.2fx (target <= 1.0x)\n", r / m }'
