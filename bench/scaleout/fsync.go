package main

import (
	"os"
	"slices"
	"time"
)

// measureFsync appends 4 KiB to a temp file in dir and syncs it, n times,
// and returns the p50, p90 and p99 of the sync in ms: what one Raft commit
// waits for on this disk (the log store syncs every write).
func measureFsync(dir string, n int) (p50, p90, p99 float64, err error) {
	f, err := os.CreateTemp(dir, "scaleout-fsync-*")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	d := make([]float64, 0, n)
	for range n {
		if _, err := f.Write(buf); err != nil {
			return 0, 0, 0, err
		}
		t := time.Now()
		if err := f.Sync(); err != nil {
			return 0, 0, 0, err
		}
		d = append(d, float64(time.Since(t).Microseconds())/1000)
	}
	slices.Sort(d)
	q := func(x float64) float64 { return d[min(len(d)-1, int(x*float64(len(d))))] }
	return q(0.5), q(0.9), q(0.99), nil
}
