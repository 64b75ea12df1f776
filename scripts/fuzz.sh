#!/usr/bin/env bash
# fuzz.sh [FUZZTIME] [REGEXP] — run every Go fuzz target (or those whose "pkg Name" matches REGEXP) for
# FUZZTIME each (default 10s) on one worker, print the executions each made, and fail when a target
# crashes or stays below the floor: 20,000 executions per 30 s, scaled to FUZZTIME (FUZZ_FLOOR overrides
# the per-30 s number). Crashers land in the package's testdata/fuzz/ and then fail plain `go test`.
#
# New interesting inputs are minimized for at most FUZZ_MINIMIZE (default 500x, i.e. executions):
# Go's default (60 s each) spends a short run minimizing multi-KB inputs instead of exploring, and the
# executions of an unfinished minimization are never reported.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
T=${1:-10s}
match=${2:-.}
minimize=${FUZZ_MINIMIZE:-500x}
per30=${FUZZ_FLOOR:-20000}
case "$T" in
  *ms) secs=1 ;;
  *s) secs=${T%s} ;;
  *m) secs=$(( ${T%m} * 60 )) ;;
  *h) secs=$(( ${T%h} * 3600 )) ;;
  *x) secs=0 ;; # an execution count: no time floor
  *) echo "fuzz.sh: FUZZTIME $T is not like 30s, 10m or 1000x" >&2; exit 2 ;;
esac
floor=$(( per30 * secs / 30 ))
fail=0
results=()
for pkg in $(go list ./...); do
  for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    if ! grep -Eq -- "$match" <<<"$pkg $f"; then
      continue
    fi
    echo "== $pkg $f ($T)"
    log=$(mktemp)
    status=ok
    # -timeout=0: the default 10m would end a 10m run at its own deadline.
    if ! go test -run='^$' -fuzz="^$f\$" -fuzztime="$T" -fuzzminimizetime="$minimize" -parallel=1 -timeout=0 "$pkg" >"$log" 2>&1; then
      status=FAIL
      # Go 1.26's fuzz coordinator can report its own -fuzztime deadline as a failure when a worker is
      # mid-call (go.dev/issue/75804, fixed in Go 1.27): that is not a crasher, and none is written.
      if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
        status=ok
        echo "   (the fuzz coordinator's deadline race, go.dev/issue/75804: no failing input)"
      else
        cat "$log"
      fi
    fi
    execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
    rm -f "$log"
    if [ "$status" = ok ] && [ "$execs" -lt "$floor" ]; then
      status="SLOW (< $floor)"
    fi
    [ "$status" = ok ] || fail=1
    results+=("$(printf '%-52s %-22s %10s  %s' "${pkg#github.com/romforge/romforge/}" "$f" "$execs" "$status")")
    echo "   $execs execs: $status"
  done
done
echo
printf '%-52s %-22s %10s  %s\n' package target execs status
printf '%s\n' "${results[@]}"
exit $fail
