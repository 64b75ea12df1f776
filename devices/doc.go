// Package devices is romforge's device catalog: one YAML file per handset in catalog/, embedded in the
// binary, loaded strictly (unknown fields, duplicates and bad regexps are errors with file and line) into
// typed Device values, and looked up by codename, alias or marketing name.
package devices
