#!/usr/bin/env bash
# install-validators.sh — install the real reference tools the tests compare against (idempotent, quiet).
# As root on Debian: uses ../shared/validators/install.sh when the shared folder is beside the repository
# (it also builds lpmake/lpdump/lpunpack and puts avbtool on PATH); otherwise apt-installs the packaged
# tools. Without root it only reports what is missing: those tests then skip with the reason.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

PKGS=(fastboot android-sdk-libsparse-utils erofs-utils e2fsprogs attr libcap2-bin mkbootimg abootimg
      python3 python3-protobuf python3-six openssl brotli xz-utils zstd bzip2 lz4 gzip cpio zip unzip
      bsdiff util-linux mount time aapt android-framework-res chromium shellcheck
      qemu-system-x86 busybox-static)  # the last two: the USB rig (scripts/usbvm)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-validators: not root; skipping installs (tests needing missing tools will skip)" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-validators: no apt-get; install the reference tools by hand (see README)" >&2
  exit 0
fi

shared=""
for d in "${ROMFORGE_VALIDATORS:-}" "$REPO/../shared/validators" "$REPO/../../shared/validators"; do
  [[ -n "$d" && -x "$d/install.sh" || -n "$d" && -f "$d/install.sh" ]] && { shared=$(cd "$d" && pwd); break; }
done

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    echo "install-validators: apt-get install failed for some of: ${missing[*]}" >&2
fi

if [[ -n "$shared" ]]; then
  # The shared installer may live on a read-only copy; it copies what it needs elsewhere.
  NO_APT_UPDATE=1 bash "$shared/install.sh" >/tmp/romforge-validators-install.log 2>&1 ||
    { echo "install-validators: $shared/install.sh failed; see /tmp/romforge-validators-install.log" >&2; tail -5 /tmp/romforge-validators-install.log >&2; }
else
  echo "install-validators: no shared/validators beside the repo: avbtool, lpmake/lpdump and the fixtures are unavailable (their tests skip)" >&2
fi
exit 0
