package tree

import "io/fs"

const (
	modeSymlink = fs.ModeSymlink
	modeCharDev = fs.ModeDevice | fs.ModeCharDevice
	modeDevice  = fs.ModeDevice
	modePipe    = fs.ModeNamedPipe
	modeSocket  = fs.ModeSocket
)
