package fsm

import (
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// runCache holds the stored encoding of the runs Apply wrote last, so that
// the views read on every step (the executor's request and refusal check,
// the checkpoint pre-check) decode a run without a Pebble read. Only Apply
// fills it: a view that missed it reads Pebble and leaves the cache alone,
// so it can never put back a run older than the projection. Apply drops
// the runs it writes before committing and puts them after, so a view
// never sees a cached run older than the committed one either.
//
// It is bounded (emptied when full) and skips finished runs and runs
// stored in parts: the cache is for the runs in flight, not all of them.
type runCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

const runCacheMax = 1 << 14

// get decodes the cached run id into r, reporting whether it was there.
func (c *runCache) get(id string, r *Run) (bool, error) {
	c.mu.Lock()
	raw, ok := c.m[id]
	c.mu.Unlock()
	if !ok {
		return false, nil
	}
	return true, msgpack.Unmarshal(raw, r)
}

// drop forgets the runs about to be written.
func (c *runCache) drop(written map[string][]byte) {
	c.mu.Lock()
	for id := range written {
		delete(c.m, id)
	}
	c.mu.Unlock()
}

// put caches the runs just committed (nil: a run not to cache).
func (c *runCache) put(written map[string][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m)+len(written) > runCacheMax {
		c.m = make(map[string][]byte, len(written))
	}
	for id, raw := range written {
		if raw != nil {
			c.m[id] = raw
		}
	}
}

func (c *runCache) reset() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}
