package fsm

import (
	"bytes"
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
	// due gathers where the batch queued calls (for the executor).
	due    *DueHints
	fns    *fnCache
	synced *bool // set once the batch syncs an app
	lims   *limitsCache
	// docs holds the events decoded for expressions in this entry (event).
	docs map[docKey]decoded
	// limitsSet is set once the batch records new run limits.
	limitsSet *bool
	at        int64 // the At of the record being applied
	// by is the By of the record being applied: the history entries it
	// writes name it (not the claims its LeaseNext makes: those are the
	// engine's).
	by string
	// leased counts the calls claimed by LeaseNext in this entry: in all
	// (""), per function ("f" + id) and per app ("a" + id).
	leased map[string]int
	// written holds, for the whole batch, the encoding of every run and
	// call written, by key (nil: deleted, or not to be cached), for the
	// FSM's row cache (rowcache.go). rows is that cache (nil: off) and pre
	// what was read for the batch before it was applied (FSM.prefetch):
	// getRaw reads a row from them when the batch has not written it.
	written map[string][]byte
	rows    *rowCache
	pre     *prefetched
	// parts holds, for the whole batch, the part count of every value read
	// that is stored in parts, so that replacing or deleting it also drops
	// its parts (Apply reads what it rewrites).
	parts map[string]int
	// runs holds the one copy of each run the record being applied has
	// read or created, in first-touch order; flushRuns stores them when the
	// record is done. Nested work (an emitted event cancelling the caller's
	// run, a freed slot waking another step of it) changes that same copy,
	// so no stale copy is ever written back and history numbers stay unique.
	runs     map[string]*cachedRun
	runOrder []string
}

// cachedRun is a run read by the current record, with its stored encoding
// (nil for a run created by it) so that an unchanged run is not rewritten.
type cachedRun struct {
	run *Run
	raw []byte
}

// run returns the record's copy of a run, reading it on first use; nil if
// there is no such run.
func (t *txn) run(id string) *Run {
	if cr, ok := t.runs[id]; ok {
		return cr.run
	}
	raw := t.getRaw(keyRun(id))
	if raw == nil {
		return nil
	}
	run := &Run{}
	if err := msgpack.Unmarshal(raw, run); err != nil {
		panic(fmt.Sprintf("fsm: decode %q: %v", keyRun(id), err))
	}
	t.cacheRun(run, raw)
	return run
}

// addRun makes a run created by this record the copy that is stored.
func (t *txn) addRun(run *Run) { t.cacheRun(run, nil) }

func (t *txn) cacheRun(run *Run, raw []byte) {
	if t.runs == nil {
		t.runs = map[string]*cachedRun{}
	}
	if _, ok := t.runs[run.ID]; ok {
		panic(fmt.Sprintf("fsm: run %s cached twice", run.ID))
	}
	t.runs[run.ID] = &cachedRun{run: run, raw: raw}
	t.runOrder = append(t.runOrder, run.ID)
}

// flushRuns stores every run the record changed, once, in the order they
// were first touched, and empties the cache for the next record.
func (t *txn) flushRuns() {
	for _, id := range t.runOrder {
		cr := t.runs[id]
		raw, err := msgpack.Marshal(cr.run)
		if err != nil {
			panic(fmt.Sprintf("fsm: encode %q: %v", keyRun(id), err))
		}
		if cr.raw == nil || !bytes.Equal(raw, cr.raw) {
			k := keyRun(id)
			t.putRaw(k, raw)
			if cr.run.Done() && t.written != nil {
				t.written[string(k)] = nil // not worth caching
			}
		}
	}
	clear(t.runs)
	t.runOrder = t.runOrder[:0]
}

func (t *txn) getRaw(k []byte) []byte {
	if raw, ok := t.cachedRaw(k); ok {
		return raw
	}
	v, closer, err := t.b.Get(k)
	if err == pebble.ErrNotFound {
		return nil
	}
	if err != nil {
		panic(fmt.Sprintf("fsm: get %q: %v", k, err))
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return t.whole(k, out)
}

// whole returns the value at k given what is stored there: the value
// itself, or the header of its parts.
func (t *txn) whole(k, v []byte) []byte {
	size, n, ok := parseHeader(v)
	if !ok {
		return v
	}
	t.parts[string(k)] = n
	it, err := t.b.NewIter(nil)
	if err != nil {
		panic(fmt.Sprintf("fsm: iter: %v", err))
	}
	defer it.Close()
	out, err := joinParts(it, k, size, n)
	if err != nil {
		panic(err.Error())
	}
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

// has reports whether k holds a value (a large one is not read).
func (t *txn) has(k []byte) bool { return t.size(k) > 0 }

// size returns the length of the value at k (0 if none), without reading
// its parts.
func (t *txn) size(k []byte) int64 {
	v, closer, err := t.b.Get(k)
	if err == pebble.ErrNotFound {
		return 0
	}
	if err != nil {
		panic(fmt.Sprintf("fsm: get %q: %v", k, err))
	}
	defer closer.Close()
	if size, _, ok := parseHeader(v); ok {
		return int64(size)
	}
	return int64(len(v))
}

// limits returns the run limits recorded by the last LimitsSet.
func (t *txn) limits() Limits {
	useCache := t.lims != nil && !*t.limitsSet
	var gen uint64
	if useCache {
		var cached *Limits
		if cached, gen = t.lims.get(); cached != nil {
			return *cached
		}
	}
	var l Limits // none before the first LimitsSet, as the releases before it
	t.get(keyLimits, &l)
	if useCache {
		t.lims.put(l, gen)
	}
	return l
}

func (t *txn) put(k []byte, v any) {
	raw, err := msgpack.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fsm: encode %q: %v", k, err))
	}
	t.putRaw(k, raw)
}

func (t *txn) putRaw(k, v []byte) {
	t.noteWrite(k, v, true)
	if n := setValue(t.b, k, v, t.parts[string(k)]); n > 0 {
		t.parts[string(k)] = n
	} else {
		delete(t.parts, string(k))
	}
}

func (t *txn) del(k []byte) {
	t.noteWrite(k, nil, false)
	deleteValue(t.b, k, t.parts[string(k)])
	delete(t.parts, string(k))
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
		if !fn(it.Key(), t.whole(it.Key(), it.Value())) {
			return
		}
	}
}

func mustUnmarshal(raw []byte, v any) {
	if err := msgpack.Unmarshal(raw, v); err != nil {
		panic(fmt.Sprintf("fsm: decode %T: %v", v, err))
	}
}
