package fsm

import (
	"testing"

	"github.com/cockroachdb/pebble"
)

// putCall over a call that is already stored moves its queue entry: the
// old one must not stay behind.
func TestPutCallReplacesQueueEntry(t *testing.T) {
	f, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := f.db.NewIndexedBatch()
	due := NoHints()
	tx := &txn{b: b, due: &due, parts: map[string]int{}}
	tx.putCall(&Call{RunID: "r1", ID: "zz", Type: CallSleep, Due: 10})
	tx.putCall(&Call{RunID: "r1", ID: "zz", Type: CallSleep, Due: 20})
	tx.putCall(&Call{RunID: "r1", ID: "zz", Type: CallHTTP, Due: 30, Claimed: true})
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if q := QueueEntries(f, "r1"); len(q) != 1 || q[0] != "lq/30/zz" {
		t.Fatalf("queue entries %v, want only lq/30/zz", q)
	}
}
