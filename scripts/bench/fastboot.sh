#!/usr/bin/env bash
# fastboot.sh — flash one sparse image to the romforge emulator over TCP with `romforge fastboot flash`
# and with the AOSP `fastboot` client in the same run: wall time, ratio (ours/AOSP, target ≤ 1.0) and
# peak RSS; then with the emulator's rate cap (--fault rate=MBps) the fraction of the cap romforge
# reaches (target ≥ 90 %). Both partitions are compared with the expanded image afterwards.
#   BENCH_FASTBOOT_SIZE  expanded size of the generated image (default 256M; the issue's figure: 1G)
#   BENCH_FASTBOOT_RATE  emulator rate cap in MB/s for the second part (default 100)
#   BENCH_DIR            work directory (default: a temp dir, removed afterwards)
#   ROMFORGE             romforge binary (default: built into the work directory)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
size=${BENCH_FASTBOOT_SIZE:-256M}
rate=${BENCH_FASTBOOT_RATE:-100}
for t in fastboot img2simg python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "fastboot bench: $t not installed (apt install fastboot android-sdk-libsparse-utils time)"; exit 1; }
done
work=${BENCH_DIR:-$(mktemp -d)}
emu_pid=
cleanup() {
  [[ -z $emu_pid ]] || kill "$emu_pid" 2>/dev/null || true
  [[ -n ${BENCH_DIR:-} ]] || rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work"
if [[ -z ${ROMFORGE:-} ]]; then
  CGO_ENABLED=0 go build -trimpath -o "$work/romforge" ./cmd/romforge
  ROMFORGE=$work/romforge
fi

# A deterministic image: about half random data, the rest zero and pattern runs.
python3 - "$work/in.raw" "$size" <<'PY'
import random, struct, sys
path, s = sys.argv[1], sys.argv[2].upper()
size = int(s.rstrip("KMG")) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1], 1)
r = random.Random(8)
with open(path, "wb") as f:
    left = size
    while left > 0:
        n = min(left, r.randint(1, 1024) * 4096)
        k = r.random()
        if k < 0.5:
            f.write(r.randbytes(n))
        elif k < 0.85:
            f.write(bytes(n))
        else:
            f.write((struct.pack("<I", r.getrandbits(32)) * (n // 4 + 1))[:n])
        left -= n
PY
img2simg "$work/in.raw" "$work/in.sparse.img"
cat "$work/in.sparse.img" >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
serial=tcp:127.0.0.1:$port
start_emulator() { # extra emulate flags…
  rm -rf "$work/state"
  "$ROMFORGE" emulate --device alioth --listen "$serial" --state "$work/state" "$@" >"$work/emu.log" 2>&1 &
  emu_pid=$!
  for _ in $(seq 100); do
    fastboot -s "$serial" getvar product >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "emulator did not start:"; cat "$work/emu.log"; exit 1
}
stop_emulator() { kill "$emu_pid"; wait "$emu_pid" 2>/dev/null || true; emu_pid=; }

measure() { # CMD… → "seconds maxrss_kib"
  local log=$work/time.log
  /usr/bin/time -v -o "$log" "$@" >/dev/null 2>"$work/err.log" || { cat "$work/err.log"; exit 1; }
  awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; w=s}
              /Maximum resident set size/ {r=$2} END {print w, r}' "$log"
}
check() { # partition file → compared with the expanded image
  python3 - "$1" "$work/in.raw" <<'PY'
import sys
a, b = open(sys.argv[1], "rb"), open(sys.argv[2], "rb")
n = 0
while True:
    x, y = a.read(1 << 20), b.read(1 << 20)
    if x != y:
        sys.exit(f"partition differs from the image near byte {n}")
    if not y:
        break
    n += len(y)
PY
}

sparse_bytes=$(stat -c %s "$work/in.sparse.img")
echo "image: $size expanded, $sparse_bytes bytes sparse; emulator alioth (max-download-size 0x20000000) on $serial"
# userdata: the catalog partitions of alioth are too small for big images; userdata is not slotted.
# Each side runs BENCH_FASTBOOT_REPEAT times (default 3), alternating, on a fresh emulator each time;
# the best time counts (the machine may be shared; the first run of a fresh binary pays cold caches).
"$ROMFORGE" version >/dev/null
best() { python3 -c "import sys; print(min(float(x) for x in sys.argv[1:]))" "$@"; }
ours_t=() aosp_t=()
for _ in $(seq "${BENCH_FASTBOOT_REPEAT:-3}"); do
  start_emulator
  read -r t ours_rss < <(measure "$ROMFORGE" fastboot flash userdata "$work/in.sparse.img" --serial "$serial")
  ours_t+=("$t")
  check "$work/state/partitions/userdata.img"
  stop_emulator
  start_emulator
  read -r t aosp_rss < <(measure fastboot -s "$serial" flash userdata "$work/in.sparse.img")
  aosp_t+=("$t")
  check "$work/state/partitions/userdata.img"
  stop_emulator
done
ours=$(best "${ours_t[@]}") aosp=$(best "${aosp_t[@]}")
echo "runs: romforge ${ours_t[*]} s; AOSP ${aosp_t[*]} s"
printf '%-28s %9s %9s %7s %12s %12s\n' "flash over TCP" "romforge" "AOSP" "ratio" "rss romforge" "rss AOSP"
printf '%-28s %8.2fs %8.2fs %6.2fx %9s KiB %9s KiB\n' "userdata ($size sparse)" "$ours" "$aosp" \
  "$(python3 -c "print($ours/max($aosp,0.001))")" "$ours_rss" "$aosp_rss"

capped_t=()
for _ in $(seq "${BENCH_FASTBOOT_REPEAT:-3}"); do
  start_emulator --fault "rate=$rate"
  read -r t _ < <(measure "$ROMFORGE" fastboot flash userdata "$work/in.sparse.img" --serial "$serial")
  capped_t+=("$t")
  check "$work/state/partitions/userdata.img"
  stop_emulator
done
capped=$(best "${capped_t[@]}")
python3 - "$sparse_bytes" "$capped" "$rate" <<'PY'
import sys
n, t, cap = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
got = n / t / 1e6
print(f"with rate={cap:g} MB/s: romforge moved {n} bytes in {t:.2f}s = {got:.1f} MB/s, {100*got/cap:.1f} % of the cap (whole flash, incl. the emulator's writes)")
PY
