package fsm

import (
	"fmt"

	"github.com/cockroachdb/pebble"
	"github.com/vmihailenco/msgpack/v5"
)

// txn is the write side of one applied entry: reads see earlier writes of
// the same batch. Errors from Pebble here mean the node cannot go on, so they
// panic rather than return.
type txn struct {
	b     *pebble.Batch
	index uint64 // log index of the entry being applied
	// fresh lists the app calls queued by the record being applied, for
	// LeaseNext to claim.
	fresh []*Call
	// minDue is the earliest due time of the calls queued by this batch.
	minDue int64
	fns    *fnCache
	synced *bool // set once the batch syncs an app
	at     int64 // the At of the record being applied
	// leased counts the calls claimed by LeaseNext in this entry: in all
	// (""), per function ("f" + id) and per app ("a" + id).
	leased map[string]int
}

func (t *txn) getRaw(k []byte) []byte {
	v, closer, err := t.b.Get(k)
	if err == pebble.ErrNotFound {
		return nil
	}
	if err != nil {
		panic(fmt.Sprintf("fsm: get %q: %v", k, err))
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out
}

// get decodes the value at k into v and reports whether it existed.
func (t *txn) get(k []byte, v any) bool {
	raw := t.getRaw(k)
	if raw == nil {
		return false
	}
	if err := msgpack.Unmarshal(raw, v); err != nil {
		panic(fmt.Sprintf("fsm: decode %q: %v", k, err))
	}
	return true
}

func (t *txn) has(k []byte) bool { return t.getRaw(k) != nil }

func (t *txn) put(k []byte, v any) { mustSet(t.b, k, v) }

func (t *txn) putRaw(k, v []byte) {
	if err := t.b.Set(k, v, nil); err != nil {
		panic(fmt.Sprintf("fsm: set %q: %v", k, err))
	}
}

func (t *txn) del(k []byte) {
	if err := t.b.Delete(k, nil); err != nil {
		panic(fmt.Sprintf("fsm: delete %q: %v", k, err))
	}
}

// scan calls fn for each key with the given prefix, in key order, until fn
// returns false. Keys and values are only valid during the call.
func (t *txn) scan(prefix []byte, fn func(k, v []byte) bool) {
	it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		panic(fmt.Sprintf("fsm: iter %q: %v", prefix, err))
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if !fn(it.Key(), it.Value()) {
			return
		}
	}
}

func mustUnmarshal(raw []byte, v any) {
	if err := msgpack.Unmarshal(raw, v); err != nil {
		panic(fmt.Sprintf("fsm: decode %T: %v", v, err))
	}
}
