//go:build race

package ui

// raceSlowdown: the race detector slows reads several times over; the page
// budget is about the binary that serves users.
const raceSlowdown = 10
