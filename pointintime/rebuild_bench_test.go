package pointintime_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	raftlog "github.com/cairn-dev/cairn/log"
	"github.com/cairn-dev/cairn/pointintime"
	"github.com/hashicorp/raft"
)

// storeLog reads a stopped node's Raft log store.
type storeLog struct{ s *raftlog.Store }

func (l storeLog) FirstIndex() (uint64, error) { return l.s.FirstIndex() }
func (l storeLog) LastIndex() (uint64, error)  { return l.s.LastIndex() }
func (l storeLog) Entries(from, to uint64, fn func(*raft.Log) error) error {
	var e raft.Log
	for i := from; i <= to; i++ {
		if err := l.s.GetLog(i, &e); err != nil {
			return err
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkRebuildLastIndex rebuilds the state at the last index of a
// stopped node's data dir (CAIRN_PIT_DATA, e.g. one `go run ./bench -keep`
// left) and reports records applied per second. For profiles:
//
//	CAIRN_PIT_DATA=/tmp/cairn-bench-.../go/data go test -run X -bench Rebuild -cpuprofile cpu.out ./pointintime/
func BenchmarkRebuildLastIndex(b *testing.B) {
	dir := os.Getenv("CAIRN_PIT_DATA")
	if dir == "" {
		b.Skip("CAIRN_PIT_DATA is not set")
	}
	store, err := raftlog.Open(filepath.Join(dir, "raft"), raftlog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(dir, "snapshots"), 2, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	last, _ := store.LastIndex()
	records := 0
	cpu0 := processCPU()
	for range b.N {
		past, err := pointintime.Open(pointintime.Config{Dir: b.TempDir(), Log: storeLog{store}, Snapshots: snaps})
		if err != nil {
			b.Fatal(err)
		}
		st, err := past.At(context.Background(), last)
		if err != nil {
			b.Fatal(err)
		}
		records += st.Build.Records
		st.Release()
		past.Close()
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	// On a shared machine wall time counts waiting for a core; CPU time
	// (the whole process's: GC and Pebble's goroutines too) does not.
	b.ReportMetric(float64(records)/(processCPU()-cpu0).Seconds(), "records/cpu-s")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
