package fsm

import "sync"

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

// cachedRaw returns the row at k from the row cache when this batch has
// not written it.
func (t *txn) cachedRaw(k []byte) ([]byte, bool) {
	if t.rows == nil || !cachedRow(k) {
		return nil, false
	}
	if _, ok := t.written[string(k)]; ok {
		return nil, false
	}
	return t.rows.get(k)
}
