package fsm

import "sync"

// fnCache keeps decoded functions in memory: every call and every event
// reads its function, and functions change only when an app syncs. It is a
// pure cache of the projection, emptied after any batch that synced an app;
// the generation stops a reader that raced with such a batch from putting
// back what it read before the batch.
type fnCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]*Function
}

func (c *fnCache) get(id string) (*Function, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id], c.gen
}

func (c *fnCache) put(id string, fn *Function, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil || len(c.m) > 100000 {
		c.m = map[string]*Function{}
	}
	c.m[id] = fn
}

func (c *fnCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.m = nil
}

// limitsCache keeps the run limits (m/limits) in memory: the API reads
// them for every checkpoint and Apply for every claim, and only LimitsSet
// changes them. Like fnCache, a reading taken before a reset is not kept.
type limitsCache struct {
	mu  sync.Mutex
	gen uint64
	v   *Limits
}

func (c *limitsCache) get() (*Limits, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.v, c.gen
}

func (c *limitsCache) put(l Limits, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		c.v = &l
	}
}

func (c *limitsCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.v = nil
}
