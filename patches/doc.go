// Package patches is romforge's patch engine: declarative patch sets (YAML, built-in ones embedded from
// sets/, user ones from files) made of steps — remove_packages, remove_paths, hosts, props, xml, init,
// replace — applied to the partitions of a ROM through tree.Overlay, so the source trees and images are
// never modified and a failed step leaves nothing half-done. Every step is idempotent, supports dry-run and
// reports exactly what it changed. The schema is documented in README.md beside this file.
package patches
