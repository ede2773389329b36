package archive

import (
	"bytes"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// processCPU is the CPU time this process has used: on a shared machine
// wall time counts waiting for a core, CPU time does not.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppend archives segments of 512 entries of 1 KiB (about what a
// burst's entries weigh, bench/README.md): what compaction adds per entry,
// encoding, checksums and the synced writes of segment and manifest.
// cpu-ns/entry times entries per step is the archive's CPU per step.
func BenchmarkAppend(b *testing.B) {
	const perSegment = 512
	data := bytes.Repeat([]byte("x"), 1024)
	st, err := NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	a, err := Open(Options{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	next := uint64(1)
	b.SetBytes(perSegment * int64(len(data)))
	b.ResetTimer()
	start := processCPU()
	for range b.N {
		batch := make([]*raft.Log, perSegment)
		for i := range batch {
			batch[i] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: now}
			next++
		}
		if err := a.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU()-start)/float64(b.N*perSegment), "cpu-ns/entry")
}
