//go:build race

package httpapi_test

// raceDetector: the race detector slows JSON decoding about tenfold, so tests that fold very long
// streams fold shorter ones under it.
const raceDetector = true
