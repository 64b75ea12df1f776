#!/usr/bin/env bash
# boot.sh — `romforge boot unpack/repack` against AOSP unpack_bootimg/mkbootimg on the same boot v2
# image, in one run: wall time, ratio (ours/theirs) and peak RSS, plus byte-identity checks.
#   BENCH_BOOT_MB   kernel size in MiB (default 32; the ramdisk is a quarter of it)
#   BENCH_DIR       work directory (default: a temp dir, removed afterwards)
#   ROMFORGE        romforge binary (default: built into the work directory)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mb=${BENCH_BOOT_MB:-32}
for t in aosp-mkbootimg aosp-unpack_bootimg /usr/bin/time head; do
  command -v "$t" >/dev/null || { echo "boot bench: $t not installed (shared/validators/install.sh; apt install time)"; exit 1; }
done
work=${BENCH_DIR:-$(mktemp -d)}
[[ -n ${BENCH_DIR:-} ]] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
if [[ -z ${ROMFORGE:-} ]]; then
  CGO_ENABLED=0 go build -trimpath -o "$work/romforge" ./cmd/romforge
  ROMFORGE=$work/romforge
fi
head -c $((mb << 20)) /dev/urandom >"$work/kernel"
head -c $((mb << 18)) /dev/urandom >"$work/ramdisk"
head -c 100000 /dev/urandom >"$work/dtb"
aosp-mkbootimg --header_version 2 --kernel "$work/kernel" --ramdisk "$work/ramdisk" --dtb "$work/dtb" \
  --pagesize 4096 --os_version 13.0.0 --os_patch_level 2023-11 --cmdline "console=ttyMSM0" --output "$work/boot.img"

measure() { # CMD... → "seconds maxrss_kib"
  local log=$work/time.log
  /usr/bin/time -v -o "$log" "$@" >"$work/out.log" 2>"$work/err.log" || { cat "$work/err.log"; exit 1; }
  awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; w=s}
              /Maximum resident set size/ {r=$2} END {print w, r}' "$log"
}
row() { # op "ours_s ours_kib" "theirs_s theirs_kib"
  read -r os orss <<<"$2"; read -r ts trss <<<"$3"
  printf '%-8s ours %6.2fs %7d KiB   aosp %6.2fs %7d KiB   ratio %.2f\n' "$1" "$os" "$orss" "$ts" "$trss" \
    "$(awk -v a="$os" -v b="$ts" 'BEGIN {print (b > 0 ? a / b : 0)}')"
}
echo "boot v2 image: $(stat -c %s "$work/boot.img") bytes (kernel ${mb} MiB)"
ours=$(measure "$ROMFORGE" boot unpack "$work/boot.img" -o "$work/ours")
theirs=$(measure aosp-unpack_bootimg --boot_img "$work/boot.img" --out "$work/theirs")
row unpack "$ours" "$theirs"
for p in kernel ramdisk dtb; do cmp -s "$work/ours/$p" "$work/theirs/$p" || { echo "unpack: $p differs"; exit 1; }; done
aosp-unpack_bootimg --boot_img "$work/boot.img" --out "$work/theirs" --format=mkbootimg -0 >"$work/args"
mapfile -d '' args <"$work/args"
ours=$(measure "$ROMFORGE" boot repack "$work/ours" -o "$work/ours.img")
theirs=$(measure aosp-mkbootimg "${args[@]}" --output "$work/theirs.img")
row repack "$ours" "$theirs"
cmp "$work/ours.img" "$work/boot.img" && cmp "$work/theirs.img" "$work/boot.img" && echo "both repacks ≡ input"
