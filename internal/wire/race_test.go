//go:build race

package wire

// raceEnabled: the race detector makes sync.Pool drop a share of what it
// is given, so a pooled decoder is sometimes allocated anew.
const raceEnabled = true
