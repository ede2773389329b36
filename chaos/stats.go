package main

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// durs is a sample of durations with percentile helpers.
type durs []time.Duration

func (d durs) sorted() durs {
	s := append(durs(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

// pct returns the p-th percentile (nearest rank) of d; 0 if empty.
func (d durs) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := d.sorted()
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

func (d durs) max() time.Duration {
	var m time.Duration
	for _, v := range d {
		m = max(m, v)
	}
	return m
}

// fmtDur prints a duration with ms precision below 10 s.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
}

// triple prints "p50 / p99 / max".
func (d durs) triple() string {
	if len(d) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s / %s / %s", fmtDur(d.pct(50)), fmtDur(d.pct(99)), fmtDur(d.max()))
}
