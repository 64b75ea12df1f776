//go:build !(linux || darwin || freebsd)

package fetch

// pidAlive cannot be checked portably here; a leftover lock must be removed by hand.
func pidAlive(int) bool { return true }
