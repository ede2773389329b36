package log

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testLog builds a deterministic entry for index i, exercising every field:
// types cycle, every third entry has extensions, every fifth a zero time.
func testLog(i uint64) *raft.Log {
	l := &raft.Log{
		Index:      i,
		Term:       i/10 + 1,
		Type:       raft.LogType(i % 6),
		Data:       fmt.Appendf(nil, "entry-%d", i),
		AppendedAt: time.Unix(1_700_000_000, int64(i)*1_000_003),
	}
	if i%3 == 0 {
		l.Extensions = fmt.Appendf(nil, "ext-%d", i)
	}
	if i%5 == 0 {
		l.AppendedAt = time.Time{}
	}
	return l
}

func testLogs(from, to uint64) []*raft.Log {
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, testLog(i))
	}
	return logs
}

func equalLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt) && a.AppendedAt.IsZero() == b.AppendedAt.IsZero()
}

func checkLog(t *testing.T, s *Store, want *raft.Log) {
	t.Helper()
	var got raft.Log
	if err := s.GetLog(want.Index, &got); err != nil {
		t.Fatalf("GetLog(%d): %v", want.Index, err)
	}
	if !equalLog(&got, want) {
		t.Fatalf("GetLog(%d) = %+v, want %+v", want.Index, got, *want)
	}
}

func checkBounds(t *testing.T, s *Store, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if f != first || l != last {
		t.Fatalf("bounds = %d..%d, want %d..%d", f, l, first, last)
	}
}

func checkMissing(t *testing.T, s *Store, index uint64) {
	t.Helper()
	var got raft.Log
	if err := s.GetLog(index, &got); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(%d) error = %v, want raft.ErrLogNotFound", index, err)
	}
}

func TestEmptyStore(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	checkBounds(t, s, 0, 0)
	checkMissing(t, s, 1)
}

func TestStoreAndGetLogs(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	if err := s.StoreLog(testLog(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(testLogs(2, 100)); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 1, 100)
	for _, l := range testLogs(1, 100) {
		checkLog(t, s, l)
	}
	checkMissing(t, s, 0)
	checkMissing(t, s, 101)
	// One synced write per call, however many entries it held.
	if got := s.Syncs(); got != 2 {
		t.Fatalf("Syncs() = %d after two writes, want 2", got)
	}
}

func TestStoreLogsWithGap(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	if err := s.StoreLogs(testLogs(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(testLogs(20, 30)); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 1, 30)
	checkMissing(t, s, 15)
	checkLog(t, s, testLog(10))
	checkLog(t, s, testLog(20))
}

func TestStoreLogsRejectsIndexZero(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	if err := s.StoreLog(&raft.Log{}); err == nil {
		t.Fatal("StoreLog(index 0) succeeded")
	}
	checkBounds(t, s, 0, 0)
	if got := s.Syncs(); got != 0 {
		t.Fatalf("Syncs() = %d after a refused write, want 0", got)
	}
}

func TestDeleteRange(t *testing.T) {
	for _, tc := range []struct {
		name        string
		min, max    uint64
		first, last uint64
		gone        []uint64
		kept        []uint64
	}{
		{"head", 1, 10, 11, 100, []uint64{1, 10}, []uint64{11, 100}},
		{"tail", 91, 100, 1, 90, []uint64{91, 100}, []uint64{1, 90}},
		{"middle", 40, 60, 1, 100, []uint64{40, 50, 60}, []uint64{39, 61}},
		{"all", 1, 100, 0, 0, []uint64{1, 100}, nil},
		{"beyond both ends", 0, 1<<64 - 1, 0, 0, []uint64{1, 100}, nil},
		{"empty range", 50, 49, 1, 100, nil, []uint64{49, 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			if err := s.StoreLogs(testLogs(1, 100)); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRange(tc.min, tc.max); err != nil {
				t.Fatal(err)
			}
			check := func(s *Store) {
				checkBounds(t, s, tc.first, tc.last)
				for _, i := range tc.gone {
					checkMissing(t, s, i)
				}
				for _, i := range tc.kept {
					checkLog(t, s, testLog(i))
				}
			}
			check(s)
			// The cached bounds must agree with what a fresh scan finds.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, dir)
			defer s.Close()
			check(s)
		})
	}
}

func TestLargeEntry(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	big := testLog(1)
	big.Data = bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	big.Extensions = bytes.Repeat([]byte{0xee}, 4096)
	if err := s.StoreLogs([]*raft.Log{big, testLog(2)}); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, big)
	checkLog(t, s, testLog(2))
}

func TestGetLogOverwritesTarget(t *testing.T) {
	// Raft reuses Log values; a field absent from the stored entry must not
	// leak through from a previous read.
	s := openStore(t, t.TempDir())
	defer s.Close()
	if err := s.StoreLogs(testLogs(1, 3)); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(3, &l); err != nil { // has extensions
		t.Fatal(err)
	}
	if err := s.GetLog(1, &l); err != nil { // has none
		t.Fatal(err)
	}
	if !equalLog(&l, testLog(1)) {
		t.Fatalf("got %+v, want %+v", l, *testLog(1))
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if err := s.StoreLogs(testLogs(1, 50)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("vote"), []byte("node-2")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("term"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.StageCommitIndex(42); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(testLogs(51, 60)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir)
	defer s.Close()
	checkBounds(t, s, 6, 60)
	for _, l := range testLogs(6, 60) {
		checkLog(t, s, l)
	}
	checkMissing(t, s, 5)
	if v, err := s.Get([]byte("vote")); err != nil || string(v) != "node-2" {
		t.Fatalf("Get(vote) = %q, %v", v, err)
	}
	if v, err := s.GetUint64([]byte("term")); err != nil || v != 7 {
		t.Fatalf("GetUint64(term) = %d, %v", v, err)
	}
	if v, err := s.GetCommitIndex(); err != nil || v != 42 {
		t.Fatalf("GetCommitIndex = %d, %v", v, err)
	}
}

func TestStableStore(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()

	if v, err := s.Get([]byte("missing")); err == nil || err.Error() != "not found" || v != nil {
		t.Fatalf("Get(missing) = %q, %v; want nil, \"not found\"", v, err)
	}
	if v, err := s.GetUint64([]byte("missing")); err == nil || err.Error() != "not found" || v != 0 {
		t.Fatalf("GetUint64(missing) = %d, %v; want 0, \"not found\"", v, err)
	}
	if _, err := s.Get([]byte("missing")); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Get(missing) error %v is not ErrKeyNotFound", err)
	}

	if err := s.Set([]byte("k"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("k"), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v2" {
		t.Fatalf("Get(k) = %q, %v", v, err)
	}
	if err := s.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("empty")); err != nil || len(v) != 0 {
		t.Fatalf("Get(empty) = %q, %v", v, err)
	}

	for _, want := range []uint64{0, 1, 1<<64 - 1} {
		if err := s.SetUint64([]byte("n"), want); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetUint64([]byte("n")); err != nil || got != want {
			t.Fatalf("GetUint64(n) = %d, %v; want %d", got, err, want)
		}
	}
	if _, err := s.GetUint64([]byte("k")); err == nil {
		t.Fatal("GetUint64 of a 2-byte value succeeded")
	}

	// Stable keys live outside the log range whatever their bytes.
	if err := s.Set([]byte{prefixLog}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 0, 0)
}

func TestCommitIndex(t *testing.T) {
	t.Run("persisted with next StoreLogs", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, dir)
		if v, err := s.GetCommitIndex(); err != nil || v != 0 {
			t.Fatalf("GetCommitIndex on empty store = %d, %v", v, err)
		}
		if err := s.StoreLogs(testLogs(1, 10)); err != nil {
			t.Fatal(err)
		}
		if err := s.StageCommitIndex(8); err != nil {
			t.Fatal(err)
		}
		if v, _ := s.GetCommitIndex(); v != 0 {
			t.Fatalf("staged index visible before StoreLogs: %d", v)
		}
		if err := s.StoreLogs(testLogs(11, 12)); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = openStore(t, dir)
		defer s.Close()
		if v, err := s.GetCommitIndex(); err != nil || v != 8 {
			t.Fatalf("GetCommitIndex = %d, %v; want 8", v, err)
		}
	})

	t.Run("staged only is not persisted", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, dir)
		if err := s.StageCommitIndex(3); err != nil {
			t.Fatal(err)
		}
		if err := s.StoreLogs(testLogs(1, 5)); err != nil {
			t.Fatal(err)
		}
		if err := s.StageCommitIndex(5); err != nil {
			t.Fatal(err)
		}
		// Neither an empty StoreLogs nor other writes carry the staged index.
		if err := s.StoreLogs(nil); err != nil {
			t.Fatal(err)
		}
		if err := s.SetUint64([]byte("term"), 2); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRange(1, 1); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = openStore(t, dir)
		defer s.Close()
		if v, err := s.GetCommitIndex(); err != nil || v != 3 {
			t.Fatalf("GetCommitIndex = %d, %v; want 3", v, err)
		}
	})

	t.Run("never above last index", func(t *testing.T) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		if err := s.StageCommitIndex(10); err != nil {
			t.Fatal(err)
		}
		if err := s.StoreLogs(testLogs(1, 10)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRange(8, 10); err != nil {
			t.Fatal(err)
		}
		if v, err := s.GetCommitIndex(); err != nil || v != 7 {
			t.Fatalf("GetCommitIndex = %d, %v; want 7", v, err)
		}
	})
}
