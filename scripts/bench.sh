#!/usr/bin/env bash
# bench.sh [AREA...] — speed side by side with the peer tools, one area script per format in scripts/bench/
# (sparse, payload, avb, ext4, erofs, fastboot, ...). Each prints times, ratios and peak RSS. Sizes come
# from environment variables documented at the top of each area script (defaults are small; the issue
# targets use e.g. BENCH_PAYLOAD_SIZE=2G).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CGO_ENABLED=0
mkdir -p dist
go build -trimpath -o dist/romforge ./cmd/romforge
export ROMFORGE="$PWD/dist/romforge"
areas=("$@")
if ((${#areas[@]} == 0)); then
  for f in scripts/bench/*.sh; do areas+=("$(basename "$f" .sh)"); done
fi
for a in "${areas[@]}"; do
  echo "===== $a"
  bash "scripts/bench/$a.sh" || echo "bench $a failed (exit $?)"
done
