package main

import "github.com/romforge/romforge/rom"

// isROMKind reports whether path is detected as one of the ROM containers the pipeline opens (block and
// file OTA zips, Xiaomi fastboot ROMs), even when opening it fails.
func isROMKind(path string) bool {
	in, err := rom.Detect(path)
	if err != nil {
		return false
	}
	switch in.Kind {
	case rom.KindBlockOTAZip, rom.KindFileOTAZip, rom.KindXiaomiFastbootTGZ, rom.KindXiaomiFastbootDir:
		return true
	}
	return false
}
