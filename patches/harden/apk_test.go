package harden

import "github.com/romforge/romforge/android/apk"

func apkBuild(pkg string, extra map[string][]byte) []byte { return apk.Build(pkg, "", extra) }
