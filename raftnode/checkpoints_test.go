package raftnode

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Thinning keeps the first and the last checkpoint and drops the one whose
// neighbours are closest, so the kept ones spread over the whole history.
func TestClosestNeighbours(t *testing.T) {
	for _, c := range []struct {
		idx  []uint64
		want int
	}{
		{[]uint64{10, 20, 30}, 1},
		{[]uint64{10, 20, 25, 40}, 1},   // 25-10 < 40-20
		{[]uint64{10, 30, 35, 40}, 2},   // 40-30 is the smallest gap
		{[]uint64{0, 100, 101, 102}, 2}, // 102-100
	} {
		if got := closestNeighbours(c.idx); got != c.want {
			t.Errorf("%v: dropped position %d, want %d", c.idx, got, c.want)
		}
	}
}

// A checkpoint directory a crash left half written is removed on open; the
// complete ones are listed in order.
func TestOpenCheckpointsCleansUp(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"00000000000000000020", "00000000000000000010", "00000000000000000030.tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c, err := openCheckpoints(dir, CheckpointConfig{}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Indexes(); !slices.Equal(got, []uint64{10, 20}) {
		t.Fatalf("indexes %v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000030.tmp")); !os.IsNotExist(err) {
		t.Fatalf("the half-written checkpoint is still there: %v", err)
	}
	if c, _ := openCheckpoints(dir, CheckpointConfig{Keep: -1}, slog.Default()); c != nil {
		t.Fatal("Keep -1 still opened checkpoints")
	}
}
