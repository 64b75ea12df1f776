#!/usr/bin/env bash
# fastboot.sh — flash one sparse image to the romforge emulator over TCP with `romforge fastboot flash`
# and with the AOSP `fastboot` client in the same run: wall time, ratio (ours/AOSP, target ≤ 1.0) and
# peak RSS; then both clients again under the emulator's rate cap (--fault rate=MBps): the whole-flash
# rate as a fraction of the cap (target ≥ 90 %), and the rate of the data phases alone. Every
# partition is compared with the expanded image afterwards.
#   BENCH_FASTBOOT_SIZE    expanded size of the generated image (default 256M; the issue's figure: 1G)
#   BENCH_FASTBOOT_RATE    emulator rate cap in MB/s for the second part (default 100)
#   BENCH_FASTBOOT_REPEAT  runs per client and part, alternating (default 3)
#   BENCH_STATE_DIR        where the emulator keeps its partitions (default /dev/shm when it exists,
#                          so that the host's disk writeback does not time the flash; else the work dir)
#   BENCH_DIR              work directory (default: a temp dir, removed afterwards; a kept one reuses
#                          its generated image)
#   ROMFORGE               romforge binary (default: built into the work directory)
# Run it under the shared lock: flock /tmp/romforge-bench.lock bash scripts/bench/fastboot.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
size=${BENCH_FASTBOOT_SIZE:-256M}
rate=${BENCH_FASTBOOT_RATE:-100}
repeat=${BENCH_FASTBOOT_REPEAT:-3}
for t in fastboot img2simg python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "fastboot bench: $t not installed (apt install fastboot android-sdk-libsparse-utils time)"; exit 1; }
done
work=${BENCH_DIR:-$(mktemp -d)}
statebase=${BENCH_STATE_DIR:-}
if [[ -z $statebase ]]; then
  if [[ -d /dev/shm && -w /dev/shm ]]; then statebase=$(mktemp -d /dev/shm/romforge-bench.XXXXXX); else statebase=$work; fi
fi
emu_pid=
cleanup() {
  [[ -z $emu_pid ]] || kill "$emu_pid" 2>/dev/null || true
  rm -rf "$statebase/state"
  [[ $statebase != /dev/shm/romforge-bench.* ]] || rmdir "$statebase" 2>/dev/null || true
  [[ -n ${BENCH_DIR:-} ]] || rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work"
if [[ -z ${ROMFORGE:-} ]]; then
  CGO_ENABLED=0 go build -trimpath -o "$work/romforge" ./cmd/romforge
  ROMFORGE=$work/romforge
fi

# A deterministic image: about half random data, the rest zero and pattern runs.
if [[ ! -s $work/in.sparse.img || $(cat "$work/in.size" 2>/dev/null) != "$size" ]]; then
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
  echo "$size" >"$work/in.size"
fi
cat "$work/in.raw" "$work/in.sparse.img" >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
serial=tcp:127.0.0.1:$port
start_emulator() { # extra emulate flags…
  rm -rf "$statebase/state"
  "$ROMFORGE" emulate --verbose --device alioth --listen "$serial" --state "$statebase/state" "$@" >"$work/emu.log" 2>&1 &
  emu_pid=$!
  for _ in $(seq 100); do
    fastboot -s "$serial" getvar product >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "emulator did not start:"; cat "$work/emu.log"; exit 1
}
stop_emulator() { kill "$emu_pid"; wait "$emu_pid" 2>/dev/null || true; emu_pid=; }

measure() { # CMD… → "seconds maxrss_kib" (the command's stdout goes to $work/out.log)
  local log=$work/time.log
  /usr/bin/time -v -o "$log" "$@" >"$work/out.log" 2>"$work/err.log" || { cat "$work/err.log"; exit 1; }
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
# The emulator's own view of the last flash, the same for both clients: data-phase seconds (DATA
# reply to last byte received, summed over downloads), bytes downloaded, seconds in flash commands.
emu_phases() {
  awk '/^download: [0-9]+ bytes in / {b+=$2; t+=$5+0} /^flash [^ ]+: [0-9]+ staged bytes written in / {f+=$8+0}
       END {printf "%.3f %d %.3f\n", t, b, f}' "$work/emu.log"
}
stats() { # label numbers… → "label: a b c s (best x, median y)"
  python3 - "$@" <<'PY'
import statistics, sys
label, xs = sys.argv[1], [float(x) for x in sys.argv[2:]]
print(f"{label}: {' '.join(f'{x:.2f}' for x in xs)} s (best {min(xs):.2f}, median {statistics.median(xs):.2f}, spread {max(xs)-min(xs):.2f})")
PY
}

sparse_bytes=$(stat -c %s "$work/in.sparse.img")
echo "image: $size expanded, $sparse_bytes bytes sparse; emulator alioth (max-download-size 0x20000000) on $serial"
echo "emulator state in $statebase; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# userdata: the catalog partitions of alioth are too small for big images; userdata is not slotted.
"$ROMFORGE" version >/dev/null
best() { python3 -c "import sys; print(min(float(x) for x in sys.argv[1:]))" "$@"; }
# run_one CLIENT RUN [emulate flags…]: one flash on a fresh emulator; prints a row and sets t and rss.
# whole = sparse bytes / client wall time (process start to exit: getvars, download, the emulator's
# write, all of it); data = download bytes / data-phase time as the emulator measured it (DATA reply to
# last byte received), the same yardstick for both clients; flash = seconds the emulator spent in flash
# commands (the protocol is serial: the client waits); client dl = romforge's own download-command
# rate (download:… sent to OKAY received).
run_one() {
  local client=$1 i=$2 cdl=-
  shift 2
  start_emulator "$@"
  if [[ $client == romforge ]]; then
    read -r t rss < <(measure "$ROMFORGE" --json fastboot flash userdata "$work/in.sparse.img" --serial "$serial")
    cdl=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%.1f" % (j["download_bytes"]/j["download_seconds"]/1e6))' "$work/out.log")
  else
    read -r t rss < <(measure fastboot -s "$serial" flash userdata "$work/in.sparse.img")
  fi
  check "$statebase/state/partitions/userdata.img"
  stop_emulator
  read -r dt db ft < <(emu_phases)
  python3 - "$client" "$i" "$t" "$sparse_bytes" "$dt" "$db" "$ft" "$cap" "$cdl" <<'PY'
import sys
c, i, t, n, dt, db, ft, cap, cdl = sys.argv[1:]
t, n, dt, db, ft = float(t), int(n), float(dt), int(db), float(ft)
whole, data = n / t / 1e6, db / max(dt, 1e-9) / 1e6
pc = lambda x: f"{100*x/float(cap):6.1f}%" if cap != "-" else "      -"
print(f"  {c:<9} {i:>3} {t:7.2f}s {whole:11.1f} {pc(whole)} {data:11.1f} {pc(data)} {ft:10.2f} {cdl:>14}")
PY
}
header() { printf '  %-9s %3s %8s %11s %7s %11s %7s %10s %14s\n' client run wall "whole MB/s" "% cap" "data MB/s" "% cap" "flash s" "client dl MB/s"; }

# Each side runs $repeat times, alternating, on a fresh emulator each time; the best time counts for
# the ratio (the machine may be shared; the first run of a fresh binary pays cold caches).
echo "no cap:"
header
cap=- ours_t=() aosp_t=()
for i in $(seq "$repeat"); do
  run_one romforge "$i"; ours_t+=("$t"); ours_rss=$rss
  run_one AOSP "$i"; aosp_t+=("$t"); aosp_rss=$rss
done
ours=$(best "${ours_t[@]}") aosp=$(best "${aosp_t[@]}")
stats "uncapped, romforge" "${ours_t[@]}"
stats "uncapped, AOSP    " "${aosp_t[@]}"
printf '%-28s %9s %9s %7s %12s %12s\n' "flash over TCP" "romforge" "AOSP" "ratio" "rss romforge" "rss AOSP"
printf '%-28s %8.2fs %8.2fs %6.2fx %9s KiB %9s KiB\n' "userdata ($size sparse)" "$ours" "$aosp" \
  "$(python3 -c "print($ours/max($aosp,0.001))")" "$ours_rss" "$aosp_rss"

echo "with rate=$rate MB/s (% of the cap = whole-flash rate / cap, as before; the data-phase rate is shown beside it):"
header
cap=$rate capped_ours=() capped_aosp=()
for i in $(seq "$repeat"); do
  run_one romforge "$i" --fault "rate=$rate"; capped_ours+=("$t")
  run_one AOSP "$i" --fault "rate=$rate"; capped_aosp+=("$t")
done
stats "capped, romforge" "${capped_ours[@]}"
stats "capped, AOSP    " "${capped_aosp[@]}"
python3 - "$sparse_bytes" "$(best "${capped_ours[@]}")" "$(best "${capped_aosp[@]}")" "$rate" <<'PY'
import sys
n, t, ta, cap = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
got, gota = n / t / 1e6, n / ta / 1e6
print(f"with rate={cap:g} MB/s, best runs: romforge moved {n} bytes in {t:.2f}s = {got:.1f} MB/s, {100*got/cap:.1f} % of the cap; "
      f"AOSP {ta:.2f}s = {gota:.1f} MB/s, {100*gota/cap:.1f} % (whole flash, incl. the emulator's writes)")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
