#!/usr/bin/env bash
# release.sh [VERSION] — static, reproducible binaries for six targets in dist/ with SHA256SUMS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
export CGO_ENABLED=0
rm -rf dist && mkdir -p dist
for target in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64; do
  os=${target%/*} arch=${target#*/} ext=""
  [[ $os == windows ]] && ext=.exe
  out="dist/romforge-$VERSION-$os-$arch$ext"
  GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=false \
    -ldflags "-s -w -buildid= -X main.version=$VERSION -X main.commit=$COMMIT" -o "$out" ./cmd/romforge
  echo "built $out"
done
(cd dist && sha256sum romforge-* > SHA256SUMS)
cat dist/SHA256SUMS
