package fsm

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
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
	return len(k) > 2 && k[1] == '/' && (k[0] == 'r' || k[0] == 'c')
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

// noteWrite records, for the row cache, that the batch wrote v at k (nil:
// deleted, or not to be cached).
func (t *txn) noteWrite(k, v []byte) {
	if t.written != nil && cachedRow(k) {
		if v != nil && partsOf(len(v)) > 0 {
			v = nil
		}
		t.written[string(k)] = v
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
	raw, ok := t.pre[string(k)]
	return raw, ok
}

// prefetch reads, before a batch is applied, the runs and calls its step
// records will read first and the row cache lacks (after a storm of
// timers, the runs woken have long left it), with one iterator seeking in
// key order: a point read each costs a merged seek through every memtable
// and level. The result holds the committed rows (nil: none stored); a
// row stored in parts is left out, for getRaw to note its parts.
func (f *FSM) prefetch(entries [][]Record) map[string][]byte {
	var keys [][]byte
	want := func(k []byte) {
		if _, ok := f.rows.get(k); !ok {
			keys = append(keys, k)
		}
	}
	for _, recs := range entries {
		for _, r := range recs {
			var run, call string
			switch r := r.(type) {
			case *TimerFired:
				run, call = r.RunID, r.Call
			case *CallClaimed:
				run, call = r.RunID, r.Call
			case *CallFinished:
				run, call = r.RunID, r.Call
			case *StepsCheckpointed:
				run, call = r.RunID, r.Call
			default:
				continue
			}
			want(keyRun(run))
			want(keyCall(run, call))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.SortFunc(keys, bytes.Compare)
	pre := make(map[string][]byte, len(keys))
	it, err := f.db.NewIter(nil)
	if err != nil {
		panic(fmt.Sprintf("fsm: prefetch: %v", err))
	}
	defer it.Close()
	for _, k := range keys {
		if !it.SeekGE(k) || !bytes.Equal(it.Key(), k) {
			pre[string(k)] = nil
			continue
		}
		if v := it.Value(); !isParts(v) {
			pre[string(k)] = slices.Clone(v)
		}
	}
	if err := it.Error(); err != nil {
		panic(fmt.Sprintf("fsm: prefetch: %v", err))
	}
	return pre
}

func isParts(v []byte) bool { _, _, ok := parseHeader(v); return ok }
