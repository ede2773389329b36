package fsm

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/vmihailenco/msgpack/v5"
)

// A projection written by a release with one queue (q/) gets its entries
// moved to the timer queue and the functions' queues when opened.
func TestSplitQueuesMovesOldEntries(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	oneQueueLayout(t, f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkQueuesSplit(t, f)
}

// A snapshot names its projection's layout: this release writes the split
// queues' (CAIRNSNAP2), which a node of a release before them refuses (it
// reads CAIRNSNAP1 only); it restores a snapshot of the one-queue layout
// and splits it; and it refuses a header it does not know.
func TestSnapshotLayouts(t *testing.T) {
	old, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oneQueueLayout(t, old)
	applied, _ := msgpack.Marshal(appliedState{Index: 7})
	if err := old.db.Set(keyApplied, applied, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	snap, err := old.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = snap.WriteTo(&buf)
	snap.Release()
	if err != nil {
		t.Fatal(err)
	}
	stream := buf.Bytes()
	if !bytes.HasPrefix(stream, []byte("CAIRNSNAP2")) {
		t.Fatalf("snapshot header %q, want CAIRNSNAP2", stream[:10])
	}
	restore := func(header string) (*FSM, error) {
		f, err := Open(t.TempDir(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f, f.Restore(bytes.NewReader(append([]byte(header), stream[10:]...)))
	}
	// The state above, as the release before the split wrote it.
	f, err := restore("CAIRNSNAP1")
	if err != nil {
		t.Fatal(err)
	}
	checkQueuesSplit(t, f)
	if _, err := restore("CAIRNSNAP3"); err == nil || !strings.Contains(err.Error(), "newer release") {
		t.Fatalf("a snapshot from a newer release: %v, want it refused", err)
	}
}

// oneQueueLayout writes into f the rows of a projection of a release with
// one due queue (q/): two runs' calls, a timer and an app call, an entry
// with no call behind it and one with a bad key; no split mark.
func oneQueueLayout(t *testing.T, f *FSM) {
	t.Helper()
	set := func(k []byte, v any) {
		t.Helper()
		var raw []byte
		if v != nil {
			var err error
			if raw, err = msgpack.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.db.Set(k, raw, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	set(keyRun("r1"), &Run{ID: "r1", FnID: "fn-a"})
	set(keyRun("r2"), &Run{ID: "r2", FnID: "fn-b"})
	set(keyCall("r1", "s1"), &Call{RunID: "r1", ID: "s1", Type: CallHTTP, Due: 10})
	set(keyCall("r2", "nap"), &Call{RunID: "r2", ID: "nap", Type: CallSleep, Due: 20})
	set(queueKey(prefixOldQueue, 10, "r1", "s1"), nil)
	set(queueKey(prefixOldQueue, 20, "r2", "nap"), nil)
	set(queueKey(prefixOldQueue, 30, "r3", "gone"), nil) // no call behind it
	set([]byte("q/bad"), nil)
	if err := f.db.Delete(keyQueuesSplit, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
}

// checkQueuesSplit checks that f holds oneQueueLayout's rows split.
func checkQueuesSplit(t *testing.T, f *FSM) {
	t.Helper()
	left := 0
	f.scanStored(prefixOldQueue, prefixEnd(prefixOldQueue), false, func(*pebble.Iterator) bool { left++; return true })
	if left != 0 {
		t.Fatalf("%d entries left in q/", left)
	}
	timers, _, _, err := f.TimersFrom(nil, 100, 10, nil)
	if err != nil || len(timers) != 1 || timers[0].ID != "nap" {
		t.Fatalf("timers %v, %v; want the nap", timers, err)
	}
	calls, _, _, err := f.CallsFrom("fn-a", nil, 100, 10, nil)
	if err != nil || len(calls) != 1 || calls[0].ID != "s1" {
		t.Fatalf("fn-a's calls %v, %v; want s1", calls, err)
	}
	if fns, err := f.QueuedFunctions(); err != nil || !slices.Equal(fns, []string{"fn-a"}) {
		t.Fatalf("queued functions %v, %v; want [fn-a]", fns, err)
	}
	if due, next, err := f.Due(15, 10, nil); err != nil || len(due) != 1 || next != 20 {
		t.Fatalf("Due(15): %v, next %d, %v; want s1, next 20", due, next, err)
	}
}

// Apply hints where it queued calls: timers apart, app calls by function.
func TestDueHintsByQueue(t *testing.T) {
	f, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if h := f.TakeDueHints(); !h.All {
		t.Fatalf("first hints %+v, want All (read every queue after opening)", h)
	}
	b := f.db.NewIndexedBatch()
	due := NoHints()
	tx := &txn{b: b, due: &due, parts: map[string]int{}}
	tx.runs = map[string]*cachedRun{
		"r1": {run: &Run{ID: "r1", FnID: "fn-a"}},
		"r2": {run: &Run{ID: "r2", FnID: "fn-b"}},
	}
	tx.putCall(&Call{RunID: "r1", ID: "a", Type: CallHTTP, Due: 50})
	tx.putCall(&Call{RunID: "r1", ID: "b", Type: CallHTTP, Due: 40})
	tx.putCall(&Call{RunID: "r2", ID: "c", Type: CallHTTP, Due: 70})
	tx.putCall(&Call{RunID: "r2", ID: "nap", Type: CallSleep, Due: 90})
	tx.putCall(&Call{RunID: "r2", ID: "d", Type: CallHTTP, Due: 10, Claimed: true}) // claimed: no hint
	if due.Timers != 90 || len(due.Calls) != 2 || due.Calls["fn-a"] != 40 || due.Calls["fn-b"] != 70 {
		t.Fatalf("hints %+v", due)
	}
	f.addHints(due)
	f.addHints(DueHints{Timers: math.MaxInt64, Calls: map[string]int64{"fn-a": 30}})
	if h := f.TakeDueHints(); h.All || h.Timers != 90 || h.Calls["fn-a"] != 30 || h.Calls["fn-b"] != 70 {
		t.Fatalf("merged hints %+v", h)
	}
	if h := f.TakeDueHints(); !h.empty() {
		t.Fatalf("hints after taking them %+v, want none", h)
	}
}
