#!/usr/bin/env bash
# install-udev-rules.sh — let non-root users flash phones over USB: installs 51-android-fastboot.rules
# into /etc/udev/rules.d, makes sure the plugdev group exists, and reloads udev. Idempotent: running it
# again changes nothing when the installed rules are current. Run as root (sudo).
#   RULES_DIR=/some/dir ./install-udev-rules.sh   installs elsewhere (for packaging and tests)
#   ADD_USER=name                                  also adds that user to plugdev
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src="$here/51-android-fastboot.rules"
dir=${RULES_DIR:-/etc/udev/rules.d}
dst="$dir/51-android-fastboot.rules"

if [[ ! -f "$src" ]]; then
  echo "install-udev-rules: $src is missing" >&2
  exit 1
fi
if [[ -z "${RULES_DIR:-}" && $(id -u) -ne 0 ]]; then
  echo "install-udev-rules: run as root: sudo $0" >&2
  exit 1
fi

mkdir -p "$dir"
if [[ -f "$dst" ]] && cmp -s "$src" "$dst"; then
  echo "rules already current: $dst"
else
  install -m 0644 "$src" "$dst"
  echo "installed $dst"
fi

if [[ -z "${RULES_DIR:-}" ]]; then
  if ! getent group plugdev >/dev/null; then
    groupadd --system plugdev
    echo "created group plugdev"
  fi
  if [[ -n "${ADD_USER:-}" ]]; then
    if id -nG "$ADD_USER" | tr ' ' '\n' | grep -qx plugdev; then
      echo "user $ADD_USER is already in plugdev"
    else
      usermod -aG plugdev "$ADD_USER"
      echo "added $ADD_USER to plugdev (log out and in again)"
    fi
  fi
  if command -v udevadm >/dev/null && [[ -d /run/udev ]]; then
    udevadm control --reload-rules
    udevadm trigger --subsystem-match=usb --action=change
    echo "reloaded udev rules; replug the phone"
  else
    echo "udev is not running here (container?): the rules apply at the next boot"
  fi
fi
