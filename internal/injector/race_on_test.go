//go:build race

package injector

// raceEnabled: the race detector makes sync.Pool drop items on purpose,
// so allocation counts of pooled paths are not asserted under it.
const raceEnabled = true
