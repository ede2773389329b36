package raftnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-dev/cairn/archive"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/hashicorp/raft"
)

// readAll reads every entry the node's LogSource serves, checking the
// indexes run from FirstIndex to LastIndex without a hole.
func readAll(t *testing.T, n *testNode) []*raft.Log {
	t.Helper()
	src := n.LogSource()
	first, _ := src.FirstIndex()
	last, _ := src.LastIndex()
	var out []*raft.Log
	err := src.Entries(first, last, func(l *raft.Log) error {
		if want := first + uint64(len(out)); l.Index != want {
			return fmt.Errorf("entry %d where %d was due", l.Index, want)
		}
		c := *l
		out = append(out, &c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCompactedLogIsArchived: with snapshots every few entries, the head
// of the log is compacted again and again, yet LogSource serves every entry
// from index 1, the archive's copies equal to what the log held, and every
// proposed record is there once, in order.
func TestCompactedLogIsArchived(t *testing.T) {
	dir := t.TempDir()
	n := openNodeWith(t, memNodeCfg(dir, "n1"))
	waitFor(t, "leadership", n.IsLeader)
	const total = 60
	before := map[uint64]raft.Log{} // what the log held, read before compaction
	for i := range total {
		if _, err := n.Propose(context.Background(), event(fmt.Sprintf("a%d", i))); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			first, _ := n.store.FirstIndex()
			last, _ := n.store.LastIndex()
			for j := first; j <= last; j++ {
				var l raft.Log
				if n.store.GetLog(j, &l) == nil {
					before[j] = l
				}
			}
			if err := n.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if first, _ := n.store.FirstIndex(); first < 30 {
		t.Fatalf("the log was not compacted (first index %d)", first)
	}
	if ci, _ := n.store.GetCommitIndex(); ci != 0 {
		t.Fatalf("raft staged a commit index (%d): log.Options.Committed could use it", ci)
	}
	if st := n.ArchiveStatus(); st == nil || st.Segments == 0 || st.First != 1 || len(st.Gaps) != 0 {
		t.Fatalf("archive status %+v", st)
	}
	if first, _ := n.LogSource().FirstIndex(); first != 1 {
		t.Fatalf("first readable index %d, want 1", first)
	}
	got := readAll(t, n)
	var ids []string
	for _, l := range got {
		if b, ok := before[l.Index]; ok && (b.Term != l.Term || b.Type != l.Type || string(b.Data) != string(l.Data) || !b.AppendedAt.Equal(l.AppendedAt)) {
			t.Fatalf("entry %d read back differs from the log's", l.Index)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		recs, err := fsm.DecodeEntry(l.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if ev, ok := r.(*fsm.EventAccepted); ok {
				ids = append(ids, ev.ID)
			}
		}
	}
	if len(ids) != total {
		t.Fatalf("%d events read back, want %d", len(ids), total)
	}
	for i, id := range ids {
		if id != fmt.Sprintf("a%d", i) {
			t.Fatalf("event %d is %s", i, id)
		}
	}

	// Restarted, the node reads the same; a corrupted segment is reported.
	n.close()
	n = openNodeWith(t, memNodeCfg(dir, "n1"))
	waitFor(t, "leadership", n.IsLeader)
	if again := readAll(t, n); len(again) < len(got) {
		t.Fatalf("after restart %d entries, before %d", len(again), len(got))
	}
	seg := n.arch.Segments()[0]
	p := filepath.Join(dir, archiveDirName, seg.Name)
	raw, _ := os.ReadFile(p)
	raw[len(raw)-5] ^= 1
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, raw, 0o444); err != nil {
		t.Fatal(err)
	}
	err := n.LogSource().Entries(1, 2, func(*raft.Log) error { return nil })
	if !errors.Is(err, archive.ErrCorrupt) {
		t.Fatalf("read of a corrupted segment: %v", err)
	}
}

// TestArchiveOffDropsAsBefore: with the archive off, LogSource starts at
// the log's first index and says clearly that earlier ones are gone.
func TestArchiveOffDropsAsBefore(t *testing.T) {
	cfg := memNodeCfg(t.TempDir(), "n1")
	cfg.Archive.Off = true
	n := openNodeWith(t, cfg)
	waitFor(t, "leadership", n.IsLeader)
	proposeEvents(t, n, 0, 20)
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, _ := n.LogSource().FirstIndex()
	if first <= 1 || n.ArchiveStatus() != nil {
		t.Fatalf("first %d, status %+v", first, n.ArchiveStatus())
	}
	readAll(t, n)
	if err := n.LogSource().Entries(1, first, func(*raft.Log) error { return nil }); !errors.Is(err, ErrLogMissing) {
		t.Fatalf("read of a compacted index: %v", err)
	}
}

// TestInstalledSnapshotIsAGap: a node that catches up by installing the
// leader's snapshot never had those entries committed in its log; its
// archive records them as a gap instead of pretending, and its LogSource
// starts after the snapshot.
func TestInstalledSnapshotIsAGap(t *testing.T) {
	a1, t1 := raft.NewInmemTransport("n1")
	a2, t2 := raft.NewInmemTransport("n2")
	t1.Connect(a2, t2)
	t2.Connect(a1, t1)
	cfg1 := memNodeCfg(t.TempDir(), "n1")
	cfg1.Transport, cfg1.Solo = t1, false
	n1 := openNodeWith(t, cfg1)
	waitFor(t, "leadership", n1.IsLeader)
	proposeEvents(t, n1, 0, 30)
	if err := n1.Snapshot(); err != nil {
		t.Fatal(err)
	}
	snapIndex, _ := n1.store.FirstIndex()
	n2 := openNodeWith(t, Config{NodeID: "n2", RaftAddr: "n2", DataDir: t.TempDir(), Transport: t2,
		SnapshotThreshold: 1 << 20, TrailingLogs: 1})
	if err := n1.AddVoter("n2", "n2"); err != nil {
		t.Fatal(err)
	}
	proposeEvents(t, n1, 30, 35)
	waitFor(t, "n2 to catch up", func() bool {
		a, _ := n1.f.Applied()
		b, _ := n2.f.Applied()
		return a == b
	})
	st := n2.ArchiveStatus()
	if len(st.Gaps) != 1 || st.Gaps[0].From != 1 || st.Gaps[0].Through < snapIndex-1 || st.Segments != 0 {
		t.Fatalf("n2 archive %+v (leader compacted through %d)", st, snapIndex-1)
	}
	first, _ := n2.LogSource().FirstIndex()
	if first != st.Covered+1 {
		t.Fatalf("n2 first readable %d, archive covers through %d", first, st.Covered)
	}
	readAll(t, n2)
}
