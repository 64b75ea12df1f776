#!/usr/bin/env bash
# EROFS speed and size: romforge's writer vs mkfs.erofs -zlz4hc on the same generated tree, and reading
# every file of the image (romforge) vs fsck.erofs --extract. Prints times, ratios and peak RSS.
#   EROFS_BENCH_MB     total tree size in MiB (default 200; the issue's target run uses 1024)
#   EROFS_BENCH_FILES  number of files (default 5000; target run 20000)
#   EROFS_BENCH_DIR    work directory (default: a temp dir, removed afterwards)
set -euo pipefail
cd "$(dirname "$0")/../.."
MB=${EROFS_BENCH_MB:-200}
FILES=${EROFS_BENCH_FILES:-5000}
WORK=${EROFS_BENCH_DIR:-$(mktemp -d)}
[ -n "${EROFS_BENCH_DIR:-}" ] || trap 'rm -rf "$WORK"' EXIT
command -v mkfs.erofs >/dev/null || { echo "mkfs.erofs not installed (scripts/install-validators.sh)"; exit 1; }
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "GNU time missing: apt-get install time"; exit 1; }

SRC=$WORK/src
if [ ! -d "$SRC" ]; then
  echo "generating $FILES files, ~$MB MiB in $SRC"
  python3 - "$SRC" "$MB" "$FILES" <<'PY'
import os, random, sys
root, mb, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(42)
vocab = ("import package func return struct interface static final class public private void int "
         "string const var for if else switch case default ro.product.system persist.sys android "
         "xiaomi vendor lib64 bin etc init service on property:sys.boot_completed=1 start stop "
         "{ } ( ) ; = == != := <- -> // # /* */ 0x1f 1024 4096 true false null nil self this").split()
def text(n):
    out, size = [], 0
    while size < n:
        line = " ".join(rnd.choice(vocab) for _ in range(rnd.randint(3, 12))) + "\n"
        out.append(line); size += len(line)
    return "".join(out).encode()[:n]
target = mb << 20
avg = target // files
os.makedirs(root, exist_ok=True)
total = 0
for i in range(files):
    d = os.path.join(root, "d%03d" % (i % 200), "s%02d" % (i % 7))
    os.makedirs(d, exist_ok=True)
    # mixed sizes: many small, some large
    size = int(rnd.expovariate(1 / avg)) + 1
    kind = rnd.random()
    if kind < 0.6:
        data = text(size)                      # compressible text/code-like
    elif kind < 0.85:
        data = os.urandom(size)                # incompressible (already compressed media, apks)
    else:
        data = text(size // 2) + os.urandom(size - size // 2)
    with open(os.path.join(d, "f%05d.%s" % (i, ("txt", "bin", "so")[i % 3])), "wb") as f:
        f.write(data)
    total += size
print("generated %d bytes" % total)
PY
fi

go test -c -o "$WORK/erofs.test" ./fs/erofs/ >/dev/null

run() { # var, label, command... → prints elapsed seconds and max RSS, sets $var to the seconds
  local var=$1 label=$2; shift 2
  "$TIME" -f "%e %M" -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/err.txt" || { cat "$WORK/err.txt"; exit 1; }
  read -r secs rss <"$WORK/time.txt"
  printf "%-34s %8.2f s  %8d KiB peak RSS\n" "$label" "$secs" "$rss"
  printf -v "$var" %s "$secs"
}

echo "tree: $(du -sb "$SRC" | cut -f1) bytes, $(find "$SRC" -type f | wc -l) files; $(nproc) CPUs"
run t_mkfs "mkfs.erofs -zlz4hc" mkfs.erofs --quiet -zlz4hc -T0 "$WORK/mkfs.img" "$SRC"
run t_ours "romforge erofs lz4hc" env EROFS_BENCH_BUILD="$SRC,$WORK/ours.img" "$WORK/erofs.test" -test.run '^TestBenchTool$'
ms=$(stat -c %s "$WORK/mkfs.img"); os=$(stat -c %s "$WORK/ours.img")
rm -rf "$WORK/x1" "$WORK/x2"
run t_fsck1 "fsck.erofs --extract (mkfs img)" fsck.erofs --extract="$WORK/x1" "$WORK/mkfs.img"
rm -rf "$WORK/x1"
run t_fsck2 "fsck.erofs --extract (our img)" fsck.erofs --extract="$WORK/x2" "$WORK/ours.img"
rm -rf "$WORK/x2"
run t_read1 "romforge read all (mkfs img)" env EROFS_BENCH_READ="$WORK/mkfs.img" "$WORK/erofs.test" -test.run '^TestBenchTool$'
run t_read2 "romforge read all (our img)" env EROFS_BENCH_READ="$WORK/ours.img" "$WORK/erofs.test" -test.run '^TestBenchTool$'
fsck.erofs "$WORK/ours.img" >/dev/null && echo "fsck.erofs: our image OK"
echo
printf "size: mkfs.erofs %d, romforge %d (ratio %.4f; target <= 1.02)\n" "$ms" "$os" "$(echo "$os/$ms" | bc -l)"
printf "build time ratio romforge/mkfs: %.3f (target <= 0.5)\n" "$(echo "$t_ours/$t_mkfs" | bc -l)"
printf "read speed romforge vs fsck.erofs --extract: %.3fx on mkfs img, %.3fx on our img (target >= 1.0)\n" \
  "$(echo "$t_fsck1/$t_read1" | bc -l)" "$(echo "$t_fsck2/$t_read2" | bc -l)"
