package main

import (
	"sync"
	"testing"
	"time"
)

// TestCPUSplit profiles two busy goroutines with different part labels and
// checks that the split finds both and adds up to the process's CPU.
func TestCPUSplit(t *testing.T) {
	var s cpuSplit
	s.begin()
	var wg sync.WaitGroup
	spin := func(part string, d time.Duration) {
		defer wg.Done()
		labelGoroutine(part)
		x := 0
		for end := time.Now().Add(d); time.Now().Before(end); {
			for i := range 10000 {
				x += i
			}
		}
		_ = x
	}
	wg.Add(2)
	go spin(partApp, 400*time.Millisecond)
	go spin(partBench, 200*time.Millisecond)
	wg.Wait()
	sh, err := s.end()
	if err != nil {
		t.Fatal(err)
	}
	if sh.Samples == 0 || sh.NS[partApp] == 0 || sh.NS[partBench] == 0 || sh.Total <= 0 {
		t.Fatalf("split %+v", sh)
	}
	sum := sh.Part(partApp) + sh.Part(partBench) + sh.Part(partProxy)
	if d := sum - sh.Total; d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("parts add up to %v, total %v", sum, sh.Total)
	}
	t.Logf("total %v, app %v, bench %v, unlabelled %.1f%%, %d samples", sh.Total, sh.Part(partApp), sh.Part(partBench), sh.Unlabelled()*100, sh.Samples)
	// A second window works too, and abort leaves none open.
	s.begin()
	s.abort()
	if _, err := s.end(); err == nil {
		t.Fatal("end after abort: want an error")
	}
}
