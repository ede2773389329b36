package log

import (
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
)

// fakeArchive records what the store hands it.
type fakeArchive struct {
	got  []*raft.Log
	last uint64
	gaps [][2]uint64
}

func (f *fakeArchive) Last() uint64 { return f.last }

func (f *fakeArchive) Append(entries []*raft.Log) error {
	for _, e := range entries {
		if e.Index <= f.last {
			continue
		}
		if e.Index > f.last+1 {
			f.gaps = append(f.gaps, [2]uint64{f.last + 1, e.Index - 1})
		}
		f.got = append(f.got, e)
		f.last = e.Index
	}
	return nil
}

func (f *fakeArchive) Gap(through uint64, _ string) error {
	if through > f.last {
		f.gaps = append(f.gaps, [2]uint64{f.last + 1, through})
		f.last = through
	}
	return nil
}

func openArchived(t *testing.T, committed *atomic.Uint64) (*Store, *fakeArchive) {
	t.Helper()
	fa := &fakeArchive{}
	s, err := Open(t.TempDir(), Options{Logger: quiet, Archive: fa, Committed: committed.Load})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.StoreLogs(testLogs(1, 20)); err != nil {
		t.Fatal(err)
	}
	return s, fa
}

// TestDeleteRangeTailArchivesNothing: Raft drops a conflicting tail with
// DeleteRange(min > first); those entries were never committed, and nothing
// of them may reach the archive, even with a commit index above them.
func TestDeleteRangeTailArchivesNothing(t *testing.T) {
	var committed atomic.Uint64
	committed.Store(20)
	s, fa := openArchived(t, &committed)
	if err := s.DeleteRange(15, 20); err != nil {
		t.Fatal(err)
	}
	if len(fa.got) != 0 || len(fa.gaps) != 0 {
		t.Fatalf("tail deletion archived %d entries, gaps %v", len(fa.got), fa.gaps)
	}
	checkBounds(t, s, 1, 14)
}

// TestDeleteRangeHeadArchivesCommittedOnly: a head deletion archives its
// entries up to the committed index, exactly as stored, before deleting;
// the ones above it are deleted unarchived and the next archive records
// them as a gap.
func TestDeleteRangeHeadArchivesCommittedOnly(t *testing.T) {
	var committed atomic.Uint64
	committed.Store(7)
	s, fa := openArchived(t, &committed)
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	if len(fa.got) != 7 || fa.last != 7 {
		t.Fatalf("archived %d entries through %d, want 1..7", len(fa.got), fa.last)
	}
	for i, e := range fa.got {
		if !equalLog(e, testLog(uint64(i+1))) {
			t.Fatalf("archived entry %d: %+v", i+1, e)
		}
	}
	checkBounds(t, s, 11, 20)
	committed.Store(20)
	if err := s.DeleteRange(11, 12); err != nil {
		t.Fatal(err)
	}
	if fa.last != 12 || len(fa.gaps) != 1 || fa.gaps[0] != [2]uint64{8, 10} {
		t.Fatalf("last %d gaps %v, want gap 8..10", fa.last, fa.gaps)
	}
	// ArchiveCommitted archives what is committed, then gaps the rest.
	committed.Store(15)
	if err := s.ArchiveCommitted(18, "test"); err != nil {
		t.Fatal(err)
	}
	if fa.last != 18 || fa.gaps[len(fa.gaps)-1] != [2]uint64{16, 18} || fa.got[len(fa.got)-1].Index != 15 {
		t.Fatalf("last %d gaps %v", fa.last, fa.gaps)
	}
}
