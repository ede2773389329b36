package executor

import (
	"slices"
	"time"

	"github.com/cairn-dev/cairn/fsm"
)

// Fair shares of the call slots.
//
// Without them one function whose calls hang takes every slot
// (MaxInflight) and every other function waits for it. So a function may
// hold at most Config.MaxInflightPerFunction calls and an app at most
// Config.MaxInflightPerApp, and the due calls read from the queue wait in
// a buffer, one list per function, served in turn (round-robin) rather
// than in due order: a flood of one function's calls does not delay
// another's. Timers hold neither a share nor a slot: firing one is a
// record, not an app call (at most a buffer's worth are fired at once).
//
// The buffer holds at most a share's worth of calls per function: the
// calls beyond it stay in their function's own queue (fsm: qf/), which is
// read again from where the last read stopped once that function's buffer
// runs down to half (fnRoom). Each function's backlog is thus read in
// chunks, and never read through to find a timer or another function's
// call. Calls waiting for a share leave their room in the buffer to the
// others, so an app at its share, whatever its number of functions, cannot
// fill it.
//
// The fast path (LeaseNext: a record claims the calls it makes due in its
// own log entry) keeps to the shares too: a lease carries the free slots
// and the room left to the functions and apps near their share, and Apply
// claims no more. Records proposed at the same moment may together still
// lease past a share; Adopt holds those calls in the buffer, claimed, and
// sends them when the share frees.

const (
	// Default shares, as fractions of MaxInflight: half the slots per
	// function, three quarters per app, so that one hanging function or
	// app always leaves slots to the others.
	defaultFnShareDiv                      = 2
	defaultAppShareNum, defaultAppShareDen = 3, 4
	// bufferPerSlot is how many due calls that could start may wait in the
	// buffer per slot.
	bufferPerSlot = 4
	// leaseEach bounds how many calls one log entry leases to us per
	// function and per app; the ones with less room left get their room.
	leaseEach = 8
	// ownerCacheMax bounds the run → function cache (dropped when full).
	ownerCacheMax = 1 << 16
)

// buffer adds calls read from the queue to the buffer.
func (e *Executor) buffer(calls []fsm.Call) {
	if len(calls) == 0 {
		return
	}
	owners := make([]owner, len(calls))
	for i, c := range calls {
		if !c.IsTimer() {
			owners[i] = e.ownerOf(c.RunID)
		}
	}
	e.mu.Lock()
	for i, c := range calls {
		e.fair.push(readyCall{c: c, o: owners[i]})
	}
	mBuffered.Set(float64(len(e.fair.queued)))
	e.mu.Unlock()
}

// fnRoom is how many calls a read of fn's queue may add to the buffer:
// up to its share, once the calls of fn in the buffer have run down to
// half of it (so that a long queue is read in chunks, not call by call).
// Timers hold no share and are always read.
func (e *Executor) fnRoom(fn string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fair.fnRoom(fn)
}

// pick takes out of the buffer the calls to start now: every due timer
// (they hold no slot), then, at most one per free slot, one app call per
// function in turn,
// passing over functions and apps that hold their share. It marks them in
// flight. claim lists the calls to claim (and timers to fire), send the
// calls still leased to us.
func (e *Executor) pick(now int64) (claim, send []fsm.Call) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := &e.fair
	free := e.freeLocked()
	// take marks a call in flight, unless it still is (a call answered a
	// moment ago whose run queued the next under the same id): that one
	// waits in the queue until the slot is released.
	var later []readyCall // leased calls whose key is still in flight
	take := func(c fsm.Call, s slot) bool {
		k := callKey(c.RunID, c.ID)
		if _, busy := e.inflight[k]; busy {
			e.lowerLocked(c, s.o)
			return false
		}
		e.occupyLocked(k, s)
		if !s.timer {
			free--
		}
		return true
	}
	// Timers hold no slot: firing one is a record, not an app call, so a
	// storm of them neither waits for app calls nor keeps them waiting.
	for len(f.timers) > 0 && !e.draining && e.firing < f.max {
		if c := f.popTimer(); take(c, slot{timer: true}) {
			e.claiming[callKey(c.RunID, c.ID)] = true
			claim = append(claim, c)
		}
	}
	for progress := true; progress && free > 0 && len(f.ring) > 0; {
		progress = false
		for i := 0; i < len(f.ring) && free > 0; i++ {
			idx := f.turn % len(f.ring)
			if f.full(f.lists[f.ring[idx]][0].o) {
				f.turn = idx + 1
				continue
			}
			rc := f.pop(idx)
			progress = true
			if !take(rc.c, slot{o: rc.o, shared: true}) {
				if rc.leased {
					// Claimed for us: not in the queue to be read again.
					// It waits for the release (which wakes the loop).
					later = append(later, rc)
				}
				continue
			}
			if rc.leased && now < rc.c.Due {
				send = append(send, rc.c)
			} else {
				e.claiming[callKey(rc.c.RunID, rc.c.ID)] = true
				claim = append(claim, rc.c)
			}
		}
	}
	for _, rc := range later {
		f.push(rc)
	}
	mBuffered.Set(float64(len(f.queued)))
	return claim, send
}

// sendLeased starts the calls in the buffer that are leased to us whatever
// the shares: the node is draining or its term ended, and nobody else may
// send them before their lease ends. With clear, it also empties the
// buffer (the calls in it are still queued).
func (e *Executor) sendLeased(clear bool) {
	now := time.Now().UnixMilli()
	e.mu.Lock()
	var send []fsm.Call
	for _, rc := range e.fair.takeLeased() {
		k := callKey(rc.c.RunID, rc.c.ID)
		if _, busy := e.inflight[k]; busy || rc.c.Due <= now {
			continue // a lease that ended: any leader claims the call again
		}
		e.occupyLocked(k, slot{o: rc.o, shared: true})
		send = append(send, rc.c)
	}
	if clear {
		e.fair.clear()
	}
	mBuffered.Set(float64(len(e.fair.queued)))
	e.mu.Unlock()
	for _, c := range send {
		e.start(c)
	}
}

// ownerOf returns the function and app of a run (cached; empty if the run
// is gone, and such a call is refused anyway).
func (e *Executor) ownerOf(run string) owner {
	e.mu.Lock()
	o, ok := e.fair.owners[run]
	e.mu.Unlock()
	if ok {
		return o
	}
	r, err := e.fsm.Run(run)
	if err != nil || r == nil {
		return owner{}
	}
	o = owner{fn: r.FnID, app: r.AppID}
	e.mu.Lock()
	if len(e.fair.owners) >= ownerCacheMax {
		clear(e.fair.owners)
	}
	e.fair.owners[run] = o
	e.mu.Unlock()
	return o
}

// owner is what an app call counts against: its run's function and app.
type owner struct{ fn, app string }

// slot is a call holding one of the MaxInflight slots, from its claim to
// the record of its answer. shared: it also counts against its function's
// and app's shares (app calls do, timers don't).
type slot struct {
	o      owner
	shared bool
	timer  bool // a timer being fired: it holds none of the MaxInflight slots
}

// bucket counts the calls of one function or one app.
type bucket struct {
	inflight int // holding a slot
	ready    int // in the buffer
	leased   int // of those, already leased to us, waiting for the share
}

func (b *bucket) empty() bool {
	return b.inflight == 0 && b.ready == 0
}

// readyCall is a call in the buffer.
type readyCall struct {
	c      fsm.Call
	o      owner
	leased bool // claimed for us by a LeaseNext: sent as is while the lease lasts
}

// fair is the buffer and the share counts, guarded by Executor.mu.
type fair struct {
	fnShare, appShare int
	max               int // calls in the buffer that could start
	fns, apps         map[string]*bucket
	lists             map[string][]readyCall // by function id, in read order
	ring              []string               // functions with calls in the buffer, served in turn
	turn              int                    // index in ring served next
	timers            []fsm.Call             // due timers, fired before any app call
	queued            map[string]bool        // callKey of every call in the buffer
	leased            int                    // leased calls in the buffer
	owners            map[string]owner       // run id → owner (a run never changes function)
}

func newFair(fnShare, appShare, maxBuffered int) fair {
	return fair{fnShare: fnShare, appShare: appShare, max: maxBuffered,
		fns: map[string]*bucket{}, apps: map[string]*bucket{}, lists: map[string][]readyCall{},
		queued: map[string]bool{}, owners: map[string]owner{}}
}

func bucketOf(m map[string]*bucket, id string) *bucket {
	b := m[id]
	if b == nil {
		b = &bucket{}
		m[id] = b
	}
	return b
}

func tidy(m map[string]*bucket, id string) {
	if b := m[id]; b != nil && b.empty() {
		delete(m, id)
	}
}

// full reports whether o's function or app holds its share of slots.
func (f *fair) full(o owner) bool {
	fb, ab := f.fns[o.fn], f.apps[o.app]
	return fb != nil && fb.inflight >= f.fnShare || ab != nil && ab.inflight >= f.appShare
}

func (f *fair) take(o owner) {
	bucketOf(f.fns, o.fn).inflight++
	bucketOf(f.apps, o.app).inflight++
}

func (f *fair) give(o owner) {
	if b := f.fns[o.fn]; b != nil {
		b.inflight--
		tidy(f.fns, o.fn)
	}
	if b := f.apps[o.app]; b != nil {
		b.inflight--
		tidy(f.apps, o.app)
	}
}

// room is how many more calls the buffer takes: calls that wait for their
// function's or app's share do not count.
func (f *fair) room() int {
	n := len(f.timers)
	for fn, list := range f.lists {
		if !f.full(owner{fn: fn, app: list[0].o.app}) {
			n += len(list)
		}
	}
	return f.max - n
}

func (f *fair) fnRoom(fn string) int {
	b := f.fns[fn]
	if b == nil {
		return f.fnShare
	}
	if b.ready > f.fnShare/2 {
		return 0
	}
	return f.fnShare - b.ready
}

// push adds a call to the buffer (once).
func (f *fair) push(rc readyCall) {
	k := callKey(rc.c.RunID, rc.c.ID)
	if f.queued[k] {
		return
	}
	f.queued[k] = true
	if rc.c.IsTimer() {
		f.timers = append(f.timers, rc.c)
		return
	}
	if _, ok := f.lists[rc.o.fn]; !ok {
		f.ring = append(f.ring, rc.o.fn)
	}
	f.lists[rc.o.fn] = append(f.lists[rc.o.fn], rc)
	fb, ab := bucketOf(f.fns, rc.o.fn), bucketOf(f.apps, rc.o.app)
	fb.ready++
	ab.ready++
	if rc.leased {
		fb.leased++
		ab.leased++
		f.leased++
	}
}

// find returns the buffered call with key k.
func (f *fair) find(k string) (readyCall, bool) {
	for _, c := range f.timers {
		if callKey(c.RunID, c.ID) == k {
			return readyCall{c: c}, true
		}
	}
	for _, list := range f.lists {
		for _, rc := range list {
			if callKey(rc.c.RunID, rc.c.ID) == k {
				return rc, true
			}
		}
	}
	return readyCall{}, false
}

// remove takes the call with key k out of the buffer.
func (f *fair) remove(k string) {
	for i, c := range f.timers {
		if callKey(c.RunID, c.ID) == k {
			f.timers = slices.Delete(f.timers, i, i+1)
			delete(f.queued, k)
			return
		}
	}
	for idx, fn := range f.ring {
		list := f.lists[fn]
		for i, rc := range list {
			if callKey(rc.c.RunID, rc.c.ID) != k {
				continue
			}
			if len(list) == 1 {
				delete(f.lists, fn)
				f.ring = slices.Delete(f.ring, idx, idx+1)
				if f.turn > idx {
					f.turn--
				}
			} else {
				f.lists[fn] = slices.Delete(list, i, i+1)
			}
			f.unready(rc)
			return
		}
	}
}

// popTimer takes the first timer out of the buffer.
func (f *fair) popTimer() fsm.Call {
	c := f.timers[0]
	f.timers = f.timers[1:]
	delete(f.queued, callKey(c.RunID, c.ID))
	return c
}

// pop takes the first call of the function at ring[idx] out of the buffer
// and moves the turn to the next function.
func (f *fair) pop(idx int) readyCall {
	fn := f.ring[idx]
	list := f.lists[fn]
	rc := list[0]
	if len(list) == 1 {
		delete(f.lists, fn)
		f.ring = slices.Delete(f.ring, idx, idx+1)
		f.turn = idx // the next function has moved into idx
	} else {
		f.lists[fn] = list[1:]
		f.turn = idx + 1
	}
	f.unready(rc)
	return rc
}

func (f *fair) unready(rc readyCall) {
	delete(f.queued, callKey(rc.c.RunID, rc.c.ID))
	fb, ab := bucketOf(f.fns, rc.o.fn), bucketOf(f.apps, rc.o.app)
	fb.ready--
	ab.ready--
	if rc.leased {
		fb.leased--
		ab.leased--
		f.leased--
	}
	tidy(f.fns, rc.o.fn)
	tidy(f.apps, rc.o.app)
}

// takeLeased removes the leased calls from the buffer and returns them.
func (f *fair) takeLeased() []readyCall {
	if f.leased == 0 {
		return nil
	}
	var out []readyCall
	for i := len(f.ring) - 1; i >= 0; i-- {
		fn := f.ring[i]
		kept := f.lists[fn][:0:0]
		for _, rc := range f.lists[fn] {
			if rc.leased {
				out = append(out, rc)
				f.unready(rc)
			} else {
				kept = append(kept, rc)
			}
		}
		if len(kept) == 0 {
			delete(f.lists, fn)
			f.ring = slices.Delete(f.ring, i, i+1)
		} else {
			f.lists[fn] = kept
		}
	}
	return out
}

// clear empties the buffer, keeping the counts of calls in flight. The
// calls in it are still in the queue: the next read finds them again.
func (f *fair) clear() {
	clear(f.lists)
	clear(f.queued)
	f.ring, f.turn, f.timers, f.leased = nil, 0, nil, 0
	for _, m := range []map[string]*bucket{f.fns, f.apps} {
		for id, b := range m {
			b.ready, b.leased = 0, 0
			if b.empty() {
				delete(m, id)
			}
		}
	}
}

// bounds fills a lease's fair bounds: Each per function and app, and the
// exact room of those with less, less the slot of the call whose answer
// the record reports (freeing).
func (f *fair) bounds(l *fsm.LeaseNext, freeing *slot) {
	l.Each = leaseEach
	roomOf := func(b *bucket, share int, mine bool) int {
		n := share - b.inflight - b.leased
		if mine {
			n++
		}
		return max(n, 0)
	}
	credit := freeing != nil && freeing.shared
	for id, b := range f.fns {
		if n := roomOf(b, f.fnShare, credit && freeing.o.fn == id); n < leaseEach {
			l.Rooms = append(l.Rooms, fsm.LeaseRoom{Fn: id, N: n})
		}
	}
	for id, b := range f.apps {
		if n := roomOf(b, f.appShare, credit && freeing.o.app == id); n < leaseEach {
			l.Rooms = append(l.Rooms, fsm.LeaseRoom{App: id, N: n})
		}
	}
}
