#!/usr/bin/env bash
# fuzz.sh [FUZZTIME] — run every Go fuzz target for a short while (default 10s each).
# Crashers land in the package's testdata/fuzz/ and then fail plain `go test` until fixed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
T=${1:-10s}
fail=0
for pkg in $(go list ./...); do
  for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "== $pkg $f ($T)"
    go test -run='^$' -fuzz="^$f\$" -fuzztime="$T" "$pkg" || fail=1
  done
done
exit $fail
