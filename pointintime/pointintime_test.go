package pointintime_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/internal/testnet"
	"github.com/cairn-dev/cairn/pointintime"
	"github.com/cairn-dev/cairn/raftnode"
	"github.com/hashicorp/raft"
)

// node is a real single-node Raft cluster on Pebble, with point-in-time
// states over its live log.
type node struct {
	*raftnode.Node
	f    *fsm.FSM
	past *pointintime.States
	dir  string
}

func openNode(t *testing.T, tweak func(*raftnode.Config)) *node {
	t.Helper()
	dir := t.TempDir()
	f, err := fsm.Open(filepath.Join(dir, "fsm"), fsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := raftnode.Config{NodeID: "n1", RaftAddr: testnet.FreeAddr(t, "127.0.0.1"), DataDir: dir, Bootstrap: true, Solo: true}
	if tweak != nil {
		tweak(&cfg)
	}
	rn, err := raftnode.Open(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	past, err := pointintime.Open(pointintime.Config{Dir: filepath.Join(dir, "pit"), Log: rn.LogSource(), Snapshots: rn.Snapshots(), Checkpoints: rn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		past.Close()
		rn.Close()
		f.Close()
	})
	deadline := time.Now().Add(20 * time.Second)
	for !rn.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("no leadership")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &node{Node: rn, f: f, past: past, dir: dir}
}

func event(id string, at int64) *fsm.EventAccepted {
	return &fsm.EventAccepted{At: at, ID: id, Name: "test/e", JSON: []byte(`{"name":"test/e","data":{}}`)}
}

// propose proposes events one entry each and returns the live digest
// after each, by applied index, and the indexes in order.
func (n *node) propose(t *testing.T, count int, at func(i int) int64) (map[uint64]string, []uint64) {
	t.Helper()
	out := map[uint64]string{}
	var order []uint64
	for i := range count {
		if _, err := n.Propose(context.Background(), event(fmt.Sprintf("e%d-%d", i, at(i)), at(i))); err != nil {
			t.Fatal(err)
		}
		idx, _ := n.f.Applied()
		d, err := n.f.StateDigest()
		if err != nil {
			t.Fatal(err)
		}
		out[idx] = d
		order = append(order, idx)
	}
	return out, order
}

func digestAt(t *testing.T, past *pointintime.States, index uint64) (string, pointintime.BuildStats) {
	t.Helper()
	st, err := past.At(context.Background(), index)
	if err != nil {
		t.Fatalf("state at %d: %v", index, err)
	}
	defer st.Release()
	sum, err := st.Summary()
	if err != nil {
		t.Fatal(err)
	}
	return sum.Digest, st.Build
}

// Every past index gives the digest the live projection had there, in
// any order of reads (kept states carried forward or not), and reads
// leave the live projection as it was.
func TestStateAtEachIndexIsTheLiveStateThen(t *testing.T) {
	n := openNode(t, nil)
	want, order := n.propose(t, 30, func(i int) int64 { return int64(1000 + i) })
	liveIndex, liveChain := n.f.Applied()
	liveDigest, _ := n.f.StateDigest()
	// Ascending carries kept states forward; then some again from
	// scratch, out of order.
	order = append(order, order[len(order)-1], order[3], order[len(order)/2], order[1])
	for _, idx := range order {
		if got, b := digestAt(t, n.past, idx); got != want[idx] {
			t.Fatalf("digest at %d = %s, the live one then was %s (built %+v)", idx, got, want[idx], b)
		}
	}
	if got, _ := digestAt(t, n.past, liveIndex); got != liveDigest {
		t.Fatalf("the state at the applied index %d has digest %s, live %s", liveIndex, got, liveDigest)
	}
	if i, c := n.f.Applied(); i != liveIndex || c != liveChain {
		t.Fatalf("the live projection moved: %d/%x, was %d/%x", i, c, liveIndex, liveChain)
	}
	if d, _ := n.f.StateDigest(); d != liveDigest {
		t.Fatal("the live projection's digest changed")
	}
	if _, err := n.past.At(context.Background(), liveIndex+1); !errors.Is(err, pointintime.ErrAhead) {
		t.Fatalf("an index past the applied one: %v, want ErrAhead", err)
	}
}

// A node that compacted its log without an archive answers from its
// snapshot at or above the snapshot's index, and refuses below it, saying
// what it holds.
func TestCompactedLogAnswersFromSnapshot(t *testing.T) {
	n := openNode(t, func(c *raftnode.Config) {
		c.SnapshotThreshold, c.TrailingLogs, c.Archive.Off = 1<<20, 2, true
	})
	want, _ := n.propose(t, 40, func(i int) int64 { return int64(1000 + i) })
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	more, _ := n.propose(t, 10, func(i int) int64 { return int64(2000 + i) })
	for k, v := range more {
		want[k] = v
	}
	metas, err := n.Snapshots().List()
	if err != nil || len(metas) == 0 {
		t.Fatalf("snapshots: %v %v", metas, err)
	}
	snap := metas[0].Index
	first, _ := n.LogSource().FirstIndex()
	if first <= 1 {
		t.Fatalf("the log was not compacted (first index %d)", first)
	}
	for idx, d := range want {
		got, err := n.past.At(context.Background(), idx)
		if idx < snap && idx+1 < first {
			if !errors.Is(err, pointintime.ErrCompacted) || !strings.Contains(err.Error(), fmt.Sprintf("log begins at index %d", first)) ||
				!strings.Contains(err.Error(), fmt.Sprintf("indexes from %d on", snap)) {
				t.Fatalf("index %d below the snapshot (%d) and the log (%d): %v", idx, snap, first, err)
			}
			continue
		}
		if idx < snap {
			if err != nil { // the empty start is gone; a kept state may still carry it
				t.Logf("index %d: %v", idx, err)
			} else {
				got.Release()
			}
			continue
		}
		if err != nil {
			t.Fatalf("index %d at or above the snapshot %d: %v", idx, snap, err)
		}
		sum, _ := got.Summary()
		if sum.Digest != d {
			t.Fatalf("index %d from the snapshot: digest %s, live then %s (built %+v)", idx, sum.Digest, d, got.Build)
		}
		if got.Build.From == "empty" {
			t.Fatalf("index %d built from the empty state on a compacted log: %+v", idx, got.Build)
		}
		got.Release()
	}
	// The time search refuses a time before what is held, too.
	if _, err := n.past.IndexAt(context.Background(), time.UnixMilli(500)); !errors.Is(err, pointintime.ErrCompacted) {
		t.Fatalf("a time before the held log: %v", err)
	}
}

// With the archive (the default), a compacted log still answers every
// index from the empty state on, with the digest the live state had then.
func TestArchivedLogAnswersEveryIndex(t *testing.T) {
	n := openNode(t, func(c *raftnode.Config) { c.SnapshotThreshold, c.TrailingLogs = 1<<20, 2 })
	want, _ := n.propose(t, 30, func(i int) int64 { return int64(1000 + i) })
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	more, _ := n.propose(t, 5, func(i int) int64 { return int64(2000 + i) })
	for k, v := range more {
		want[k] = v
	}
	if err := n.Snapshot(); err != nil { // compacts the first batch away
		t.Fatal(err)
	}
	if st := n.ArchiveStatus(); st == nil || st.Segments == 0 || st.First != 1 {
		t.Fatalf("nothing was compacted into the archive: %+v", st)
	}
	if first, _ := n.LogSource().FirstIndex(); first != 1 {
		t.Fatalf("the archived log begins at %d, want 1", first)
	}
	for idx, d := range want {
		got, err := n.past.At(context.Background(), idx)
		if err != nil {
			t.Fatalf("index %d: %v", idx, err)
		}
		if sum, _ := got.Summary(); sum.Digest != d {
			t.Fatalf("index %d: digest %s, live then %s", idx, sum.Digest, d)
		}
		got.Release()
	}
}

// A state at or after a checkpoint is built from a copy of the nearest one
// below it (no restore, few entries), with the digest the live state had.
func TestStateFromCheckpoint(t *testing.T) {
	n := openNode(t, func(c *raftnode.Config) { c.SnapshotThreshold, c.TrailingLogs = 1<<20, 2 })
	want := map[uint64]string{}
	for round := range 3 {
		got, _ := n.propose(t, 10, func(i int) int64 { return int64(1000*(round+1) + i) })
		for k, v := range got {
			want[k] = v
		}
		if err := n.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	cps := n.CheckpointIndexes()
	if len(cps) != 3 {
		t.Fatalf("checkpoints at %v, want one per snapshot", cps)
	}
	for idx, d := range want {
		got, err := n.past.At(context.Background(), idx)
		if err != nil {
			t.Fatalf("index %d: %v", idx, err)
		}
		sum, _ := got.Summary()
		if sum.Digest != d {
			t.Fatalf("index %d: digest %s, live then %s (built %+v)", idx, sum.Digest, d, got.Build)
		}
		if idx >= cps[0] && got.Build.From != "checkpoint" && got.Build.From != "state" {
			t.Errorf("index %d (checkpoints %v) built from %s", idx, cps, got.Build.From)
		}
		if got.Build.From == "checkpoint" && (got.Build.FromIndex > idx || idx-got.Build.FromIndex > 12) {
			t.Errorf("index %d built from checkpoint %d", idx, got.Build.FromIndex)
		}
		got.Release()
	}
	// The checkpoints themselves are never opened: each still holds its
	// index after the reads.
	if again := n.CheckpointIndexes(); !slices.Equal(again, cps) {
		t.Fatalf("checkpoints now %v, were %v", again, cps)
	}
}

// Concurrent reads of one index build it once; states kept are bounded,
// and their directories go with them.
func TestConcurrentReadsBuildOnceAndKeptStatesAreBounded(t *testing.T) {
	n := openNode(t, nil)
	n.propose(t, 20, func(i int) int64 { return int64(1000 + i) })
	last, _ := n.f.Applied()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := n.past.At(context.Background(), last-3)
			if err == nil {
				st.Release()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if b := n.past.Builds(); b != 1 {
		t.Fatalf("8 concurrent reads of one index built %d states", b)
	}
	// Descending indexes cannot carry a kept state forward: each is new.
	for i := range uint64(6) {
		st, err := n.past.At(context.Background(), last-4-i)
		if err != nil {
			t.Fatal(err)
		}
		st.Release()
	}
	// An evicted state is closed once its successor is handed out: wait.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		dirs, _ := os.ReadDir(filepath.Join(n.dir, "pit"))
		if len(dirs) <= pointintime.DefaultMaxStates {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d scratch projections on disk, at most %d kept", len(dirs), pointintime.DefaultMaxStates)
		}
	}
	// A state being read is not evicted under its reader.
	held, err := n.past.At(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(5) {
		st, err := n.past.At(context.Background(), 2+i)
		if err != nil {
			t.Fatal(err)
		}
		st.Release()
	}
	if _, err := held.Summary(); err != nil {
		t.Fatalf("a held state was closed under its reader: %v", err)
	}
	held.Release()
	if err := n.past.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "pit")); !os.IsNotExist(err) {
		t.Fatalf("Close left the scratch directory: %v", err)
	}
	if _, err := n.past.At(context.Background(), 1); !errors.Is(err, pointintime.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// IndexAt finds the last index whose records are at or before a time.
func TestIndexAtTime(t *testing.T) {
	n := openNode(t, nil)
	// Entries idx[0].. carry times 10_000, 10_010, ... (ms).
	_, idx := n.propose(t, 20, func(i int) int64 { return 10_000 + int64(i)*10 })
	ctx := context.Background()
	for _, c := range []struct {
		ms   int64
		want uint64
	}{
		{10_000, idx[0]},
		{10_005, idx[0]},
		{10_010, idx[1]},
		{10_095, idx[9]},
		{99_999, idx[19]},
		{5, 0}, // before every record: the empty state
	} {
		got, err := n.past.IndexAt(ctx, time.UnixMilli(c.ms))
		if err != nil || got != c.want {
			t.Fatalf("IndexAt(%d ms) = %d, %v; want %d", c.ms, got, err, c.want)
		}
	}
}

// emptyStore is a log store that holds no entry (a new member right
// after installing a snapshot: Raft's store then says 0).
type emptyStore struct{ applied uint64 }

func (e emptyStore) FirstIndex() (uint64, error) { return 0, nil }
func (e emptyStore) LastIndex() (uint64, error)  { return e.applied, nil }
func (e emptyStore) Entries(from, to uint64, fn func(*raft.Log) error) error {
	return fmt.Errorf("entry %d: %w", from, raft.ErrLogNotFound)
}

type noSnapshots struct{}

func (noSnapshots) List() ([]*raft.SnapshotMeta, error) { return nil, nil }
func (noSnapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	return nil, nil, errors.New("no snapshot")
}

// A log store with no entries is not read as a log from index 1.
func TestEmptyLogStoreIsNotALogFromOne(t *testing.T) {
	past, err := pointintime.Open(pointintime.Config{Dir: t.TempDir(), Log: emptyStore{applied: 10}, Snapshots: noSnapshots{}})
	if err != nil {
		t.Fatal(err)
	}
	defer past.Close()
	if _, err := past.At(context.Background(), 5); !errors.Is(err, pointintime.ErrCompacted) {
		t.Fatalf("At(5) on an empty store: %v, want ErrCompacted", err)
	}
	if _, err := past.IndexAt(context.Background(), time.Now()); !errors.Is(err, pointintime.ErrCompacted) {
		t.Fatalf("IndexAt on an empty store: %v, want ErrCompacted", err)
	}
	fresh, err := pointintime.Open(pointintime.Config{Dir: t.TempDir(), Log: emptyStore{}, Snapshots: noSnapshots{}})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	st, err := fresh.At(context.Background(), 0)
	if err != nil {
		t.Fatalf("the empty state of a log never written: %v", err)
	}
	st.Release()
}

// badLog holds one entry Apply cannot decode.
type badLog struct{}

func (badLog) FirstIndex() (uint64, error) { return 1, nil }
func (badLog) LastIndex() (uint64, error)  { return 1, nil }
func (badLog) Entries(from, to uint64, fn func(*raft.Log) error) error {
	return fn(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte{0xff, 0xff}})
}

// An entry Apply panics on fails the read, not the node, and leaves no
// scratch projection behind.
func TestUnappliableEntryFailsTheReadOnly(t *testing.T) {
	dir := t.TempDir()
	past, err := pointintime.Open(pointintime.Config{Dir: dir, Log: badLog{}, Snapshots: noSnapshots{}})
	if err != nil {
		t.Fatal(err)
	}
	defer past.Close()
	if _, err := past.At(context.Background(), 1); err == nil || !strings.Contains(err.Error(), "entry 1") {
		t.Fatalf("At(1) over an undecodable entry: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("a failed build left %d scratch projections", len(left))
	}
}
