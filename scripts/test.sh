#!/usr/bin/env bash
# test.sh — the project's one test command (README, CI): install the reference tools when possible,
# check formatting and vet, run every test, and cross-build the static binaries.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CGO_ENABLED=0

step() { printf '\n== %s\n' "$*"; }

step "reference tools"
./scripts/install-validators.sh

step "gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './dist/*'))
if [[ -n "$bad" ]]; then echo "gofmt needed on:"; echo "$bad"; exit 1; fi

step "go vet"
go vet ./...

step "staticcheck"
# Pinned as a Go tool dependency (go.mod `tool`), so every machine runs the same version.
go tool staticcheck ./...
echo "staticcheck clean"

step "workflow lint (actionlint, with shellcheck on every run: script)"
# actionlint is a Go tool dependency (go.mod `tool`); without shellcheck it would skip the shell
# checks silently, so a missing shellcheck fails here.
if ! command -v shellcheck >/dev/null; then
  echo "shellcheck is not installed: apt-get install shellcheck (scripts/install-validators.sh does it as root)"
  exit 1
fi
go tool actionlint -shellcheck "$(command -v shellcheck)" .github/workflows/*.yml
echo "workflows clean"

step "go test"
go test -timeout 20m ./...

step "cross-builds"
for target in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64; do
  GOOS=${target%/*} GOARCH=${target#*/} go build -trimpath -o /dev/null ./cmd/romforge
  echo "built $target"
done
echo
echo "all checks passed"
