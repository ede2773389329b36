package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	raftlog "github.com/cairn-dev/cairn/log"
)

// measureLog appends entries to a log.Store in a temp dir under dir, writes
// synced as Raft's leader makes them, and prints the CPU per write: with one
// entry per write (an app that sends one step at a time, as the TS SDK's
// does) and with eight (a burst, group-committed).
func measureLog(dir string, writes int) error {
	tmp, err := os.MkdirTemp(dir, "cairn-floor-log-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	st, err := raftlog.Open(tmp, raftlog.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	data := make([]byte, 480) // a TS burst's entry: 481 B per step, 1.5 entries per step
	_, _ = rand.Read(data)    // incompressible, as a compressed entry is
	fmt.Printf("\nLog floor: %d synced writes to log.Store per row (%s)\n", writes, tmp)
	fmt.Printf("%-18s %14s %14s %16s\n", "entries per write", "CPU per write", "CPU per entry", "write p50 / p99")
	index := uint64(0)
	for _, per := range []int{1, 8} {
		n := max(writes/per, 1)
		lat := make([]time.Duration, 0, n)
		c0 := selfCPU()
		for range n {
			logs := make([]*raft.Log, per)
			for i := range logs {
				index++
				logs[i] = &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
			}
			t := time.Now()
			if err := st.StoreLogs(logs); err != nil {
				return err
			}
			lat = append(lat, time.Since(t))
		}
		cpu := selfCPU() - c0
		slices.Sort(lat)
		fmt.Printf("%-18d %11.1f µs %11.1f µs %9.2f / %.2f ms\n", per, float64(cpu.Microseconds())/float64(n),
			float64(cpu.Microseconds())/float64(n*per), ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]))
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
