package fsm_test

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cockroachdb/pebble/vfs"
)

// readCounter is the real disk, counting the bytes Pebble reads from it.
type readCounter struct {
	vfs.FS
	n *atomic.Int64
}

func (c readCounter) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := c.FS.Open(name, opts...)
	if err != nil {
		return nil, err
	}
	return countedFile{f, c.n}, nil
}

type countedFile struct {
	vfs.File
	n *atomic.Int64
}

func (f countedFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.n.Add(int64(n))

	return n, err
}

func (f countedFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.n.Add(int64(n))

	return n, err
}

// A run that memoized large steps must not slow down the reads of others.
// An app answering each call with a new 15 MB step once cut ingest from
// thousands of events per second to tens, for good: each event's lookups
// (its new id, the empty waitForEvent and cancelOn prefixes of its name)
// landed on data blocks that held those values whole and decompressed them
// again every time, since the projection's block cache kept nothing (see
// parts.go and blockCacheBytes). Counted in bytes read from disk, not time.
func TestLargeValuesDoNotSlowDownOtherReads(t *testing.T) {
	var read atomic.Int64
	dir := t.TempDir()
	f, err := fsm.Open(dir, fsm.Options{Logger: quietLogger(), FS: readCounter{vfs.Default, &read}})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, f: f, dir: dir}
	defer f.Close()

	run := h.startRun(0)
	big := `"` + string(bytes.Repeat([]byte("x"), 3<<20)) + `"`
	for i, at := range []int64{t0 + 10, t0 + 20} {
		call := fsm.DiscoveryCall
		res := h.answer(run, call, at, ops(stepRun(fmt.Sprintf("big%d", i), big)))
		if res.Code != fsm.OK {
			t.Fatalf("step %d: %v %s", i, res.Code, res.Msg)
		}
	}
	h.want(&fsm.CancelRequested{At: t0 + 30, RunID: run}, fsm.OK)
	if m := h.memo(run, "big1"); len(m) != len(big)+len(`{"data":}`) {
		t.Fatalf("memo of big1 is %d bytes, want %d", len(m), len(big)+len(`{"data":}`))
	}
	snap, err := f.Snapshot() // flushes the memtable: the big values are now in sstables
	if err != nil {
		t.Fatal(err)
	}
	snap.Release()

	const events = 200
	read.Store(0)
	for i := range events {
		id := fmt.Sprintf("01EVENTZ%018d", i)
		h.want(event(t0+100+int64(i), id, "other/ev"), fsm.OK)
	}
	perEvent := read.Load() / events
	t.Logf("%d bytes read from disk per event", perEvent)
	if perEvent > 4<<10 {
		t.Fatalf("each event read %d bytes from disk; a large value is read by lookups that only pass by it", perEvent)
	}
}
