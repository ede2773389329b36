package fsm

import (
	"bytes"
	"fmt"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble"
)

// rowCache holds the stored encoding of the rows Apply wrote last (the runs
// in flight and their calls), so that what reads them on every step (Apply
// itself, the executor's request and refusal check, the checkpoint
// pre-check) decodes them without a Pebble read, which costs a merged seek
// through every memtable and level.
//
// Only Apply fills it: a view that missed it reads Pebble and leaves the
// cache alone, so it can never put back a row older than the projection.
// Apply drops the rows it writes before committing and puts them after, so
// a view never sees a cached row older than the committed one either, and
// Apply reads a row from the cache only when its batch has not written it.
//
// It is bounded: rows go into a current generation, and when that is full
// it becomes the old one, replacing the one before, so the rows of runs
// still moving stay while those of runs gone quiet age out. It skips
// finished runs, deleted rows and rows stored in parts: the cache is for
// the runs in flight.
type rowCache struct {
	mu       sync.Mutex
	cur, old map[string][]byte
}

var rowCacheGen = 1 << 15 // rows per generation (a variable for tests)

// cachedRow reports whether rows under k are kept in the row cache: runs
// and calls.
func cachedRow(k []byte) bool {
	return bytes.HasPrefix(k, prefixRuns) || bytes.HasPrefix(k, prefixAllCalls)
}

// get returns the cached encoding of the row at k. It is shared: read only.
func (c *rowCache) get(k []byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if raw, ok := c.cur[string(k)]; ok {
		return raw, true
	}
	raw, ok := c.old[string(k)]
	return raw, ok
}

// drop forgets the rows about to be written.
func (c *rowCache) drop(written map[string][]byte) {
	c.mu.Lock()
	for k := range written {
		delete(c.cur, k)
		delete(c.old, k)
	}
	c.mu.Unlock()
}

// put caches the rows just committed (nil: a row not to cache).
func (c *rowCache) put(written map[string][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil || len(c.cur)+len(written) > rowCacheGen {
		c.old, c.cur = c.cur, make(map[string][]byte, rowCacheGen/4)
	}
	for k, raw := range written {
		if raw != nil {
			c.cur[k] = raw
		}
	}
}

func (c *rowCache) reset() {
	c.mu.Lock()
	c.cur, c.old = nil, nil
	c.mu.Unlock()
}

// noteWrite records, for the row cache and the batch's prefetch, that the
// batch wrote v at k (present), or deleted k. The cache keeps v: writers of
// runs and calls pass a fresh encoding.
func (t *txn) noteWrite(k, v []byte, present bool) {
	if t.written == nil || !cachedRow(k) {
		return
	}
	if !present || partsOf(len(v)) > 0 {
		v = nil // deleted, or stored in parts: not cached
	}
	t.written[string(k)] = v
	if t.pre != nil && bytes.HasPrefix(k, prefixAllCalls) {
		t.pre.noteCall(k, present)
	}
}

// cachedRaw returns the row at k (nil: none) from the row cache or the
// batch's prefetch when this batch has not written it.
func (t *txn) cachedRaw(k []byte) ([]byte, bool) {
	if t.rows == nil || !cachedRow(k) {
		return nil, false
	}
	if _, ok := t.written[string(k)]; ok {
		return nil, false
	}
	if raw, ok := t.rows.get(k); ok {
		return raw, true
	}
	if t.pre == nil {
		return nil, false
	}
	return t.pre.row(k)
}

// prefetched holds what a batch's step records will read first, read
// before the batch is applied (FSM.prefetch).
type prefetched struct {
	// rows holds committed runs and calls (nil: none stored); a row stored
	// in parts is left out, for getRaw to note its parts.
	rows map[string][]byte
	// calls holds, for the runs whose timers fired or whose calls were
	// answered, the ids of their calls: committed, then kept up to date as
	// the batch writes and deletes them (noteCall). countCalls and finish
	// read it instead of scanning the run's calls, and a call of such a run
	// that is not among them needs no read to be found absent.
	calls map[string]map[string]bool
}

// row returns the committed row at k (nil: none) when the prefetch read
// it: read alone, or as one of the calls of a run it read them all of.
func (p *prefetched) row(k []byte) ([]byte, bool) {
	if raw, ok := p.rows[string(k)]; ok {
		return raw, true
	}
	if run, call, ok := splitCallKey(k); ok {
		if ids, tracked := p.calls[run]; tracked && !ids[call] {
			return nil, true
		}
	}
	return nil, false
}

// noteCall keeps calls up to date with a write (present) or delete of the
// call row at k.
func (p *prefetched) noteCall(k []byte, present bool) {
	run, call, ok := splitCallKey(k)
	if !ok {
		return
	}
	ids := p.calls[run]
	switch {
	case ids == nil:
	case present:
		ids[call] = true
	default:
		delete(ids, call)
	}
}

// runCalls returns the ids of a run's calls, in key order, when the
// prefetch tracks them.
func (t *txn) runCalls(run string) ([]string, bool) {
	if t.pre == nil {
		return nil, false
	}
	ids, ok := t.pre.calls[run]
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	slices.Sort(out) // the order of the keys, as a scan gives them
	return out, true
}

// prefetch reads, before a batch is applied, the runs and calls its step
// records will read first and the row cache lacks (after a storm of
// timers, the runs woken have long left it), and the calls of the runs
// whose timers fired or whose calls were answered (what countCalls and
// finish would scan), with one iterator seeking in key order: a point read
// or a scan each costs a merged seek through every memtable and level.
func (f *FSM) prefetch(entries [][]Record) *prefetched {
	var keys [][]byte
	var callsOf []string
	for _, recs := range entries {
		for _, r := range recs {
			var run, call string
			scan := false
			switch r := r.(type) {
			case *TimerFired:
				run, call, scan = r.RunID, r.Call, true
			case *CallFinished:
				run, call, scan = r.RunID, r.Call, true
			case *CallClaimed:
				run, call = r.RunID, r.Call
			case *StepsCheckpointed:
				run, call = r.RunID, r.Call
			default:
				continue
			}
			want := [][]byte{keyRun(run), keyCall(run, call)}
			if scan {
				// The read of the run's calls reads this one too.
				want, callsOf = want[:1], append(callsOf, run)
			}
			for _, k := range want {
				if _, ok := f.rows.get(k); !ok {
					keys = append(keys, k)
				}
			}
		}
	}
	if len(keys) == 0 && len(callsOf) == 0 {
		return nil
	}
	p := &prefetched{rows: make(map[string][]byte, len(keys)), calls: make(map[string]map[string]bool, len(callsOf))}
	it, err := f.db.NewIter(nil)
	if err != nil {
		panic(fmt.Sprintf("fsm: prefetch: %v", err))
	}
	defer it.Close()
	keep := func(k, v []byte) {
		if !isParts(v) {
			p.rows[string(k)] = slices.Clone(v)
		}
	}
	if err := seekKeys(it, keys, func(j int, found bool) error {
		if !found {
			p.rows[string(keys[j])] = nil
		} else {
			keep(keys[j], it.Value())
		}
		return nil
	}); err != nil {
		panic(fmt.Sprintf("fsm: prefetch: %v", err))
	}
	slices.Sort(callsOf)
	for _, run := range callsOf {
		if p.calls[run] != nil {
			continue
		}
		ids := map[string]bool{}
		prefix := prefixCalls(run)
		for ok := it.SeekGE(prefix); ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
			ids[string(it.Key()[len(prefix):])] = true
			keep(it.Key(), it.Value())
		}
		p.calls[run] = ids
	}
	if err := it.Error(); err != nil {
		panic(fmt.Sprintf("fsm: prefetch: %v", err))
	}
	return p
}

// seekKeys visits keys in key order with one iterator, calling fn with each
// key's index in keys and whether it is stored (the iterator is then at it).
// Seeking one iterator forward costs far less than a point read each, which
// builds and tears down a merged iterator over every memtable and level.
func seekKeys(it *pebble.Iterator, keys [][]byte, fn func(j int, found bool) error) error {
	order := make([]int, len(keys))
	for j := range order {
		order[j] = j
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
	for _, j := range order {
		found := it.SeekGE(keys[j]) && bytes.Equal(it.Key(), keys[j])
		if err := fn(j, found); err != nil {
			return err
		}
	}
	return it.Error()
}

func isParts(v []byte) bool { _, _, ok := parseHeader(v); return ok }
