//go:build race

package testenv

// raceEnabled builds service binaries with the race detector when the tests themselves run with it.
const raceEnabled = true
