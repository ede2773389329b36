package archive

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func entries(from, to uint64, at time.Time) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: 2, Type: raft.LogCommand,
			Data: []byte(fmt.Sprintf("record %d", i)), Extensions: []byte{byte(i)},
			AppendedAt: at.Add(time.Duration(i) * time.Millisecond)})
	}
	return out
}

// logBuf collects what the archive logs, for tests that check it says so.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func open(t *testing.T, dir string, o Options) *Archive {
	t.Helper()
	st, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	o.Store = st
	a, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func equalLogs(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && bytes.Equal(a.Data, b.Data) &&
		bytes.Equal(a.Extensions, b.Extensions) && a.AppendedAt.Equal(b.AppendedAt)
}

// TestSegmentReadBackIdentical archives entries and reads them back, after
// a reopen, equal to what was archived; the segment is read-only on disk
// and the manifest indexes it by index and time.
func TestSegmentReadBackIdentical(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, Options{})
	base := time.UnixMilli(1_700_000_000_000)
	want := entries(1, 40, base)
	if err := a.Append(want[:25]); err != nil {
		t.Fatal(err)
	}
	if err := a.Append(want[20:]); err != nil { // 21..25 again: skipped
		t.Fatal(err)
	}
	a = open(t, dir, Options{})
	segs := a.Segments()
	if len(segs) != 2 || segs[0].First != 1 || segs[0].Last != 25 || segs[1].First != 26 || segs[1].Last != 40 {
		t.Fatalf("segments %+v", segs)
	}
	if segs[0].FirstTime != base.Add(time.Millisecond).UnixMilli() || segs[1].LastTime != base.Add(40*time.Millisecond).UnixMilli() {
		t.Fatalf("segment times %+v", segs)
	}
	fi, err := os.Stat(filepath.Join(dir, segs[0].Name))
	if err != nil || fi.Mode().Perm()&0o222 != 0 {
		t.Fatalf("segment file %v, mode %v: want read-only", err, fi.Mode())
	}
	var got []*raft.Log
	if err := a.Entries(1, 40, func(l *raft.Log) error { got = append(got, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if !equalLogs(got[i], want[i]) {
			t.Fatalf("entry %d: got %+v want %+v", i, got[i], want[i])
		}
	}
	// Byte-identical: re-encoding what was read gives the stored file.
	raw, _ := os.ReadFile(filepath.Join(dir, segs[0].Name))
	if !bytes.Equal(encodeSegment(got[:25]), raw) {
		t.Fatal("segment bytes differ from the encoding of the entries read back")
	}
	if err := a.Entries(41, 41, func(*raft.Log) error { return nil }); !errors.Is(err, ErrMissing) {
		t.Fatalf("past the end: %v", err)
	}
}

func TestDirPutRefusesExistingName(t *testing.T) {
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put("x", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := d.Put("x", []byte("two")); !errors.Is(err, ErrExists) {
		t.Fatalf("second put: %v, want ErrExists", err)
	}
	if b, _ := d.Get("x"); string(b) != "one" {
		t.Fatalf("got %q", b)
	}
	names, _ := d.List()
	if !reflect.DeepEqual(names, []string{"x"}) {
		t.Fatalf("list %v", names)
	}
}

// TestCorruptSegmentReported flips one byte of a segment: reading it is an
// ErrCorrupt naming the segment, and no entry of it reaches the caller.
func TestCorruptSegmentReported(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, Options{})
	if err := a.Append(entries(1, 10, time.Now())); err != nil {
		t.Fatal(err)
	}
	seg := a.Segments()[0]
	p := filepath.Join(dir, seg.Name)
	raw, _ := os.ReadFile(p)
	raw[len(raw)/2] ^= 0xff
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, raw, 0o444); err != nil {
		t.Fatal(err)
	}
	served := 0
	err := a.Entries(1, 10, func(*raft.Log) error { served++; return nil })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), seg.Name) || served != 0 {
		t.Fatalf("err %v, %d entries served", err, served)
	}
}

// TestAppendRecordsGaps: entries after a hole start a new segment, and the
// hole is a gap that reads explain.
func TestAppendRecordsGaps(t *testing.T) {
	a := open(t, t.TempDir(), Options{})
	if err := a.Append(entries(5, 7, time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := a.Gap(12, "test"); err != nil {
		t.Fatal(err)
	}
	st := a.Status()
	if len(st.Gaps) != 2 || st.Gaps[0].From != 1 || st.Gaps[0].Through != 4 || st.Gaps[1].From != 8 || st.Gaps[1].Through != 12 {
		t.Fatalf("gaps %+v", st.Gaps)
	}
	if a.ReadableFrom() != 13 {
		t.Fatalf("readable from %d, want 13 (the tail is a gap)", a.ReadableFrom())
	}
	err := a.Entries(9, 9, func(*raft.Log) error { return nil })
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "test") {
		t.Fatalf("read in a gap: %v", err)
	}
}

// TestRetentionByBytes keeps at most MaxBytes of segments: it drops
// exactly the oldest ones over the limit, says so in Status and the log.
func TestRetentionByBytes(t *testing.T) {
	var logs logBuf
	dir := t.TempDir()
	a := open(t, dir, Options{})
	for i := uint64(0); i < 5; i++ {
		if err := a.Append(entries(i*10+1, i*10+10, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	segs := a.Segments()
	size := segs[0].Bytes
	// Room for three segments and a bit: the two oldest must go.
	a = open(t, dir, Options{MaxBytes: 3*size + size/2, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	st := a.Status()
	if st.Segments != 3 || st.First != 21 || st.Last != 50 || st.Dropped.Segments != 2 || st.Dropped.Through != 20 ||
		st.Dropped.Bytes != segs[0].Bytes+segs[1].Bytes || st.Dropped.LastAt == 0 {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(logs.String(), "archive retention dropped segments") || !strings.Contains(logs.String(), "through_index=20") {
		t.Fatalf("log: %s", logs.String())
	}
	for _, s := range segs[:2] {
		if _, err := os.Stat(filepath.Join(dir, s.Name)); !os.IsNotExist(err) {
			t.Fatalf("dropped segment %s still on disk (%v)", s.Name, err)
		}
	}
	if err := a.Entries(15, 15, func(*raft.Log) error { return nil }); !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "retention") {
		t.Fatalf("read of a dropped index: %v", err)
	}
	if a.ReadableFrom() != 21 {
		t.Fatalf("readable from %d", a.ReadableFrom())
	}
	// One more segment: one more old one goes, no more.
	if err := a.Append(entries(51, 60, time.Now())); err != nil {
		t.Fatal(err)
	}
	if st := a.Status(); st.Segments != 3 || st.First != 31 || st.Dropped.Segments != 3 {
		t.Fatalf("after append: %+v", st)
	}
}

// TestRetentionByAge drops the segments whose newest record is older than
// MaxAge, and only those.
func TestRetentionByAge(t *testing.T) {
	var logs logBuf
	now := time.UnixMilli(1_800_000_000_000)
	clock := func() time.Time { return now }
	dir := t.TempDir()
	a := open(t, dir, Options{Now: clock})
	ages := []time.Duration{72 * time.Hour, 49 * time.Hour, 47 * time.Hour, time.Hour}
	for i, age := range ages {
		first := uint64(i*10 + 1)
		if err := a.Append(entries(first, first+9, now.Add(-age).Add(-time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	a = open(t, dir, Options{Now: clock, MaxAge: 48 * time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	st := a.Status()
	if st.Segments != 2 || st.First != 21 || st.Dropped.Segments != 2 || st.Dropped.Through != 20 || st.Dropped.LastAt != now.UnixMilli() {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(logs.String(), "by_age=2") {
		t.Fatalf("log: %s", logs.String())
	}
}

// TestOpenRemovesLeftovers: a segment written but never named by a
// manifest (a crash in between) is removed, and the same range can be
// archived again.
func TestOpenRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, Options{})
	if err := a.Append(entries(1, 5, time.Now())); err != nil {
		t.Fatal(err)
	}
	d, _ := NewDir(dir)
	if err := d.Put(segmentName(6, 9), encodeSegment(entries(6, 9, time.Now()))); err != nil {
		t.Fatal(err)
	}
	a = open(t, dir, Options{})
	if a.Last() != 5 {
		t.Fatalf("last %d", a.Last())
	}
	if err := a.Append(entries(6, 9, time.Now())); err != nil {
		t.Fatalf("archive again: %v", err)
	}
	names, _ := d.List()
	if len(names) != 3 { // two segments, one manifest
		t.Fatalf("files %v", names)
	}
}
