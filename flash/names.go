package flash

import (
	"path/filepath"
	"strings"
)

// firmwarePartitions are bootloader-chain partitions whose downgrade anti-rollback punishes.
var firmwarePartitions = map[string]bool{
	"xbl": true, "xbl_config": true, "abl": true, "aboot": true, "sbl1": true, "tz": true, "hyp": true,
	"rpm": true, "devcfg": true, "keymaster": true, "cmnlib": true, "cmnlib64": true, "pmic": true,
	"aop": true, "qupfw": true, "uefisecapp": true, "imagefv": true, "bluetooth": false, "lk": true,
	"preloader": true, "tee": true, "tee1": true, "tee2": true, "sspm": true, "mcupm": true,
}

// baseName strips a slot suffix.
func baseName(p string) string {
	return strings.TrimSuffix(strings.TrimSuffix(p, "_a"), "_b")
}

// imageName is what a dry run prints for an image path.
func imageName(p string) string { return filepath.Base(p) }
