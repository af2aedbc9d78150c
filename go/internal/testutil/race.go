//go:build race

package testutil

// RaceEnabled reports whether this binary was built with -race, so that
// binaries built by tests match it (and need cgo only when it does).
const RaceEnabled = true
