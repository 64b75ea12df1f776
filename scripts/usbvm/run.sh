#!/bin/bash
# run.sh: boot a QEMU (TCG) guest with Debian's kernel in which dummy_hcd wires a USB host controller to
# a device controller; `romforge emulate --listen usb` is the phone (configfs + FunctionFS) and the AOSP
# fastboot client and romforge flash it through the kernel's usbfs. Started from
# ../shared/validators/usbvm (read its README for the setup); this copy runs romforge's own emulator
# instead of a C gadget, and a fault matrix. Exit status 0 only if every USBVM-RESULT line says PASS.
#
# Environment:
#   KVER=6.1.0-57-amd64   Debian kernel ABI (package linux-image-$KVER, fetched with apt-get download)
#   USBVM_WORK=/tmp/romforge-usbvm   where the kernel, initramfs and console log go (cached between runs)
#   ROMFORGE_BIN=path     use this binary instead of building the repository
#   CLIENT_BIN=path       a different romforge as the host-side client (e.g. an old build, to show what
#                         its transport gets wrong); the emulator stays ROMFORGE_BIN's
#   FAULTS=1              run the fault matrix (0: flashing only)
#   BENCH_MIB=0           also flash N MiB with both clients and print their times (256 for the benchmark)
#   SMP=2 MEM=1536        guest CPUs and memory (MiB; raised for BENCH_MIB)
#   QEMU_TIMEOUT=300      seconds before the guest is killed
#   NO_AOSP=1             leave the AOSP fastboot client out
set -euo pipefail
T_START=$(date +%s.%N)
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SRC_DIR=$(cd "$(dirname "$0")" && pwd)
HERE=${USBVM_WORK:-${TMPDIR:-/tmp}/romforge-usbvm}
mkdir -p "$HERE"
cd "$HERE"
KVER=${KVER:-6.1.0-57-amd64}
FAULTS=${FAULTS:-1}
BENCH_MIB=${BENCH_MIB:-0}
SMP=${SMP:-2}
MEM=${MEM:-1536}
[ "$BENCH_MIB" -gt 0 ] && [ "$MEM" -lt $((1536 + 3 * BENCH_MIB)) ] && MEM=$((1536 + 3 * BENCH_MIB))
QEMU_TIMEOUT=${QEMU_TIMEOUT:-300}
step() { printf '[usbvm %6.1fs] %s\n' "$(awk "BEGIN{print $(date +%s.%N) - $T_START}")" "$*"; }

# 1. Host tools, only when missing.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
{ [ -x /bin/busybox ] && /bin/busybox --list | grep -qx insmod; } || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
[ -n "${NO_AOSP:-}" ] || command -v fastboot >/dev/null || need+=(fastboot)
if [ ${#need[@]} -gt 0 ]; then
	step "apt-get install ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >apt-install.log
fi

# 2. The kernel and its modules from the .deb (extracted here, not installed).
if [ ! -f kernel/boot/vmlinuz-$KVER ]; then
	mkdir -p debs && rm -rf kernel
	if ! ls debs/linux-image-${KVER}_*.deb >/dev/null 2>&1; then
		step "apt-get download linux-image-$KVER"
		(cd debs && apt-get download linux-image-$KVER 2>&1 | grep -v 'unsandboxed' || true)
		if ! ls debs/linux-image-${KVER}_*.deb >/dev/null 2>&1; then
			step "apt-get update, then download again"
			apt-get update >/dev/null 2>&1 || true
			(cd debs && apt-get download linux-image-$KVER 2>&1 | grep -v 'unsandboxed' || true)
		fi
	fi
	step "dpkg-deb -x linux-image-$KVER"
	dpkg-deb -x debs/linux-image-${KVER}_*.deb kernel
fi

# 3. romforge and a bundle to flash (the demo's armani bundle: boot + a 48 MiB system image).
if [ -n "${ROMFORGE_BIN:-}" ]; then
	cp "$ROMFORGE_BIN" romforge
else
	step "go build romforge"
	(cd "$REPO" && CGO_ENABLED=0 go build -o "$HERE/romforge" ./cmd/romforge)
fi
rm -rf demo && ./romforge demo --keep "$HERE/demo" >demo.log 2>&1 || { cat demo.log; exit 1; }

# 4. The initramfs: busybox, the 7 modules, init, romforge, the bundle, AOSP fastboot + its libraries.
step "initramfs"
R=$HERE/initramfs
rm -rf "$R" && mkdir -p "$R"/{bin,sbin,proc,sys,dev,tmp,root,etc,usr/bin}
cp /bin/busybox "$R/bin/busybox"
cp "$SRC_DIR/init" "$R/init" && chmod 755 "$R/init"
cp romforge "$R/bin/"
[ -z "${CLIENT_BIN:-}" ] || cp "$CLIENT_BIN" "$R/bin/rf"
cp -r demo/armani/bundle "$R/bundle"
MODS=(drivers/usb/common/usb-common drivers/usb/core/usbcore drivers/usb/gadget/udc/udc-core
	drivers/usb/gadget/udc/dummy_hcd fs/configfs/configfs drivers/usb/gadget/libcomposite
	drivers/usb/gadget/function/usb_f_fs)
for m in "${MODS[@]}"; do
	mkdir -p "$R/lib/modules/$KVER/kernel/$(dirname $m)"
	cp kernel/lib/modules/$KVER/kernel/$m.ko "$R/lib/modules/$KVER/kernel/$m.ko"
done
if [ -z "${NO_AOSP:-}" ]; then
	FB=$(readlink -f "$(command -v fastboot)")
	mkdir -p "$R/$(dirname $FB)" && cp $FB "$R/$FB"
	[ "$FB" = /usr/bin/fastboot ] || ln -sf $FB "$R/usr/bin/fastboot"
	for lib in $(ldd $FB | grep -oE '/[^ ]+\.so[^ ]*'); do
		mkdir -p "$R/$(dirname "$lib")" && cp -L "$lib" "$R/$lib"
	done
fi
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >initramfs.cpio.gz

# 5. Boot. TCG (no KVM needed); the guest powers off when done.
step "qemu-system-x86_64 -smp $SMP -m $MEM (TCG)"
T_QEMU=$(date +%s.%N)
set +e
timeout "$QEMU_TIMEOUT" qemu-system-x86_64 -machine q35,accel=tcg -cpu max -smp "$SMP" -m "$MEM" \
	-nographic -no-reboot -monitor none -serial stdio -net none \
	-kernel kernel/boot/vmlinuz-$KVER -initrd initramfs.cpio.gz \
	-append "console=ttyS0 quiet panic=-1 usbvm.faults=$FAULTS usbvm.bench_mib=$BENCH_MIB" </dev/null 2>&1 |
	sed -u 's/\r$//' >console.log
QRC=${PIPESTATUS[0]}
set -e
step "qemu exited with $QRC after $(awk "BEGIN{print $(date +%s.%N) - $T_QEMU}")s"

# 6. Verdict.
grep -E '^USBVM-(RESULT|BENCH)' console.log | sed 's/^USBVM-[A-Z]* /  /' || true
if [ "$QRC" != 0 ]; then echo "FAIL: qemu exited with $QRC (124 = timeout); see $HERE/console.log"; exit 1; fi
if ! grep -q '^USBVM-DONE' console.log; then echo "FAIL: the guest did not finish; see $HERE/console.log"; exit 1; fi
if grep -q '^USBVM-RESULT [^ ]* FAIL' console.log; then echo "FAIL: $(grep -c '^USBVM-RESULT [^ ]* FAIL' console.log) check(s) failed; see $HERE/console.log"; exit 1; fi
echo "PASS: $(grep -c '^USBVM-RESULT [^ ]* PASS' console.log) checks"
