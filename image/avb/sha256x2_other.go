//go:build !amd64 || purego

package avb

const haveSHA256x2 = false

func sha256x2(state *[16]uint32, p1, p2 *byte, n int) {
	panic("avb: sha256x2 without the SHA extensions")
}
