//go:build tools

// Package deps pins modules that packages under construction will import, so go mod tidy keeps them.
package deps

import (
	_ "github.com/andybalholm/brotli"
	_ "github.com/google/go-github/v60/github"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/pierrec/lz4/v4"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/ulikunitz/xz"
	_ "github.com/urfave/cli/v2"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/term"
	_ "google.golang.org/protobuf/proto"
	_ "gopkg.in/yaml.v3"
)
