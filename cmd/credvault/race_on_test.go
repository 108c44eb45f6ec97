//go:build race

package main

// raceEnabled: tests that drive load (and so run many times slower under
// the race detector) skip under it, keeping the package in its time budget.
const raceEnabled = true
