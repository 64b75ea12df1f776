// Package ci turns the device catalog into CI job matrices (GitHub Actions `strategy.matrix`), so a
// workflow builds patched images for every model in parallel without listing them by hand.
package ci
