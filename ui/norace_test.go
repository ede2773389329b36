//go:build !race

package ui

// raceSlowdown: see race_test.go.
const raceSlowdown = 1
