package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/internal/hostpolicy"
	"github.com/cairn-dev/cairn/sdk/protocol"
	"github.com/cairn-dev/cairn/sdk/signing"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Proposer commits records; raftnode.Node implements it.
type Proposer interface {
	Propose(ctx context.Context, recs ...fsm.Record) ([]fsm.Result, error)
}

// Config tunes the executor.
type Config struct {
	NodeID       string        // this node's id, recorded in claims
	MaxInflight  int           // concurrent app calls (default 256)
	CallTimeout  time.Duration // per app call (default 2m)
	MaxBodyBytes int64         // largest app response read (default: fsm.Limits.AppResponseBytes)
	Logger       *slog.Logger
	// ServerKind is sent to apps ("dev" or "cloud"). With a signing key,
	// every request is signed and every SDK answer must be signed.
	ServerKind string
	Keys       signing.Keys
	// AppHosts limits the addresses the default client dials (nil: any).
	AppHosts *hostpolicy.Policy
	Client   *http.Client
	// Forward commits an app's answer through the current leader, for
	// calls that outlive this node's leadership (nil: such answers are
	// dropped and their calls re-sent after the lease). It is called until
	// ctx ends while it returns an error.
	Forward func(ctx context.Context, rec *fsm.CallFinished) (fsm.Result, error)
	// Probe asks a node what its executor has in hand (its Held), so that
	// a new leader takes over at once the calls of a claimant that is gone
	// instead of waiting out their leases (reclaim.go; nil: it waits).
	// Revocable reports whether every member reads such a take-over
	// (CallClaimed.Revoke, format 5; nil: they do).
	Probe     func(ctx context.Context, node string) (Held, error)
	Revocable func() bool
	// Clock is what cron schedules are read against (default time.Now);
	// tests move it. CronTick is how often they are checked (default 1s).
	Clock    func() time.Time
	CronTick time.Duration
	// FullScanEvery is how often the whole due queue is read, as a safety
	// net behind the due-time hints (default 30s).
	FullScanEvery time.Duration
	// Fair shares of MaxInflight (see fair.go): the most calls one
	// function, and one app, may have in flight (default half and three
	// quarters of MaxInflight).
	MaxInflightPerFunction int
	MaxInflightPerApp      int
	// NoCheckpointing keeps every function in classic mode (one call per
	// step): discovery calls carry no ctx.fn_id, so the SDK does not
	// checkpoint steps mid-call (protocol §9.1). With it off (the
	// default), a function still runs classic if its own config says
	// checkpointing: false, which the SDK decides.
	NoCheckpointing bool
}

// Executor dispatches due calls. Create one per process; Run it on the leader.
type Executor struct {
	cfg  Config
	fsm  *fsm.FSM
	prop Proposer
	log  *slog.Logger
	wake chan struct{}
	boot string // this process's incarnation, recorded in claims

	mu       sync.Mutex
	inflight map[string]slot      // run\0call being claimed or called by this node
	firing   int                  // of those, timers being fired: they hold no slot
	fair     fair                 // the buffer of due calls and the shares
	held     map[string]time.Time // run\0call refused recently: skip until then
	claiming map[string]bool      // run\0call read from the queue, claim not yet decided
	low      fsm.DueHints         // where the loop must re-read the queues from
	term     *term                // set while Run is active
	draining bool                 // shutting down: take no new calls
	active   atomic.Int64         // calls started and not yet returned (see start)
	work     chan fsm.Call        // to an idle worker (see start)

	// App calls outlive the leadership term that claimed them: a deposed
	// node still gets the answer and forwards it. They end with Close.
	calls     context.Context
	stopCalls context.CancelFunc
	callWG    sync.WaitGroup
}

// term is one leadership term of the executor: claims and timers made in it
// end with it (app calls do not, see start).
type term struct {
	ctx context.Context
	wg  *sync.WaitGroup
}

var (
	mCalls = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_executor_calls_total", Help: "App calls by HTTP status class (0xx = no response).",
	}, []string{"status"})
	mCallSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "cairn_executor_call_seconds", Help: "Duration of app calls.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
	})
	mForwarded = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_executor_answers_forwarded_total", Help: "App answers handed to another leader after this node lost leadership, by outcome.",
	}, []string{"outcome"})
	mBadSignatures = promauto.NewCounter(prometheus.CounterOpts{
		Name: "cairn_executor_bad_signatures_total", Help: "App answers refused because their signature was missing or wrong.",
	})
	mScreened = promauto.NewCounter(prometheus.CounterOpts{
		Name: "cairn_executor_answers_over_limit_total", Help: "App answers with a value over the step output limit, recorded as an error instead.",
	})
	mInflight = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "cairn_executor_inflight_calls", Help: "App calls and claims in flight on this node.",
	})
	mBuffered = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "cairn_executor_ready_calls", Help: "Due calls read from the queue, waiting for a slot or for their function's or app's share.",
	})
)

// New creates an executor reading from f and proposing through p.
func New(cfg Config, f *fsm.FSM, p Proposer) *Executor {
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 256
	}
	if cfg.MaxInflightPerFunction <= 0 {
		cfg.MaxInflightPerFunction = max(1, cfg.MaxInflight/defaultFnShareDiv)
	}
	if cfg.MaxInflightPerApp <= 0 {
		cfg.MaxInflightPerApp = max(1, cfg.MaxInflight*defaultAppShareNum/defaultAppShareDen)
	}
	cfg.MaxInflightPerFunction = min(cfg.MaxInflightPerFunction, cfg.MaxInflight)
	cfg.MaxInflightPerApp = min(cfg.MaxInflightPerApp, cfg.MaxInflight)
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 2 * time.Minute
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = fsm.DefaultLimits.AppResponseBytes()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.CronTick <= 0 {
		cfg.CronTick = time.Second
	}
	if cfg.FullScanEvery <= 0 {
		cfg.FullScanEvery = 30 * time.Second
	}
	if cfg.ServerKind == "" {
		cfg.ServerKind = "dev"
	}
	if cfg.Client == nil {
		cfg.Client = appClient(cfg.AppHosts, cfg.MaxInflight)
	}
	calls, stop := context.WithCancel(context.Background())
	return &Executor{cfg: cfg, fsm: f, prop: p, log: cfg.Logger.With("component", "executor"),
		wake: make(chan struct{}, 1), work: make(chan fsm.Call), inflight: map[string]slot{}, held: map[string]time.Time{}, claiming: map[string]bool{}, low: fsm.NoHints(), boot: ulid.Make().String(),
		fair:  newFair(cfg.MaxInflightPerFunction, cfg.MaxInflightPerApp, bufferPerSlot*cfg.MaxInflight),
		calls: calls, stopCalls: stop}
}

// Close abandons the app calls still out (their claims are re-sent after
// the lease) and waits for them to return. Call Drain first to let them end.
func (e *Executor) Close() {
	e.stopCalls()
	e.callWG.Wait()
}

// Wake tells the loop that the projection changed. It never blocks, so
// fsm.Apply can call it.
func (e *Executor) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// lease is how long a claim holds a call: past it, a leader may re-send.
func (e *Executor) lease() time.Duration { return e.cfg.CallTimeout + 10*time.Second }

// Run dispatches until ctx ends (leadership lost or shutdown), then waits
// for its calls to return.
func (e *Executor) Run(ctx context.Context) {
	e.log.Info("executor started")
	var wg sync.WaitGroup
	e.mu.Lock()
	e.term = &term{ctx: ctx, wg: &wg}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.term = nil
		e.mu.Unlock()
		e.sendLeased(true)
		wg.Wait()
		e.log.Info("executor stopped")
	}()
	e.takeOver()
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.cronLoop(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.replayLoop(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.reclaimLoop(ctx)
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// Each queue is read from a cursor, never from its head, which is full
	// of deleted entries: where the last read stopped, or earlier when a
	// hint says a call was queued before it. A full read runs now and then
	// in case a hint was ever missed.
	q := newQueueCursors()
	lastFull := time.Now()
	leaseCheck := lastFull // when to look for claims whose lease ran out
	for {
		now := time.Now()
		if now.Sub(lastFull) > e.cfg.FullScanEvery {
			q.all, lastFull = true, now
		}
		h := e.fsm.TakeDueHints()
		h.Merge(e.takeLow())
		q.apply(h, e.fsm.QueuedFunctions, e.log)
		// Due calls go to the buffer first; pick then starts as many as
		// there are free slots, fairly.
		free, room := e.room()
		if room > 0 {
			room -= e.readQueues(q, now.UnixMilli(), room, free > 0)
		}
		if free > 0 && room > 0 && !now.Before(leaseCheck) {
			expired, nextLease, err := e.fsm.ExpiredClaims(now.UnixMilli(), room, e.skip)
			if err != nil {
				e.log.Error("reading expired claims", "err", err)
			}
			if len(expired) > 0 {
				e.log.Warn("re-sending calls whose claim lease ran out", "calls", len(expired))
			}
			e.buffer(expired)
			switch {
			case len(expired) == room:
				leaseCheck = now // more may have expired
			case nextLease > 0:
				leaseCheck = time.UnixMilli(max(nextLease, now.Add(time.Second).UnixMilli()))
			default:
				leaseCheck = now.Add(e.lease())
			}
		}
		claim, send := e.pick(now.UnixMilli())
		for _, c := range send {
			e.start(c)
		}
		if len(claim) > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.claimAndDispatch(ctx, claim)
			}()
		}
		// With no free slot (or a full buffer) only a wake-up (a slot
		// freed) is worth waiting for.
		wait := time.Hour
		if free, room = e.room(); room > 0 {
			if next := e.nextRead(q, free > 0); next != math.MaxInt64 {
				wait = min(max(time.Until(time.UnixMilli(next)), 0), wait)
			}
			if free > 0 {
				wait = min(max(time.Until(leaseCheck), 0), wait)
			}
		}
		wait = min(wait, max(time.Until(lastFull.Add(e.cfg.FullScanEvery)), 0))
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-timer.C:
		}
	}
}

// readQueues reads due calls into the buffer, at most room of them: the
// timers first (up to half the room when app calls are due), then, if
// calls may start (slots are free), each function's app calls while its
// share of the buffer has room. It returns how many it read.
func (e *Executor) readQueues(q *queueCursors, now int64, room int, calls bool) int {
	read := 0
	if q.timers.due <= now {
		// Timers leave half the room to app calls that are due too: a
		// storm of timers must not keep new runs out of the buffer.
		n := room
		for fn, c := range q.calls {
			if c.due <= now && e.fnRoom(fn) > 0 {
				n = (room + 1) / 2
				break
			}
		}
		due, stop, stopDue, err := e.fsm.TimersFrom(q.timers.key, now, n, e.skip)
		if err != nil {
			e.log.Error("reading due timers", "err", err)
			stop, stopDue = q.timers.key, now+1000
		}
		q.timers.stopped(stop, stopDue, now)
		e.buffer(due)
		read += len(due)
	}
	if !calls {
		return read
	}
	for fn, c := range q.calls {
		if read >= room {
			break
		}
		if c.due > now {
			continue
		}
		n := min(room-read, e.fnRoom(fn))
		if n <= 0 {
			continue
		}
		due, stop, stopDue, err := e.fsm.CallsFrom(fn, c.key, now, n, e.skip)
		if err != nil {
			e.log.Error("reading due calls", "function", fn, "err", err)
			stop, stopDue = c.key, now+1000
		}
		c.stopped(stop, stopDue, now)
		e.buffer(due)
		read += len(due)
	}
	q.tidy()
	return read
}

// nextRead is when the loop must read a queue next (math.MaxInt64: not
// before a hint): the earliest cursor of the timers and, if calls may
// start, of the functions whose share of the buffer has room.
func (e *Executor) nextRead(q *queueCursors, calls bool) int64 {
	next := q.timers.due
	if !calls {
		return next
	}
	for fn, c := range q.calls {
		if c.due < next && e.fnRoom(fn) > 0 {
			next = c.due
		}
	}
	return next
}

// Drain stops taking new calls and waits, until ctx ends, for the calls in
// flight to be answered and their answers committed. A node that drains
// before it stops leaves the next leader nothing to wait out and nothing to
// send twice. It returns how many calls were still in flight.
func (e *Executor) Drain(ctx context.Context) int {
	e.mu.Lock()
	e.draining = true
	e.mu.Unlock()
	e.sendLeased(false)
	e.Wake()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n := e.inflightCount()
		if n == 0 && e.active.Load() == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return max(n, int(e.active.Load()))
		case <-tick.C:
		}
	}
}

// room returns how many more calls the loop may start (none while
// draining) and how many more the buffer takes.
func (e *Executor) room() (free, buffer int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.freeLocked(), e.fair.room()
}

func (e *Executor) freeLocked() int {
	if e.draining {
		return 0
	}
	return e.cfg.MaxInflight - (len(e.inflight) - e.firing)
}

// takeOver re-sends at once the calls that an earlier boot of this node had
// claimed: that process is gone, so waiting out their leases gains nothing.
func (e *Executor) takeOver() {
	claimed, err := e.fsm.ClaimedBy(e.cfg.NodeID)
	if err != nil {
		e.log.Error("reading own claims", "err", err)
		return
	}
	var stale []fsm.Call
	for _, c := range claimed {
		if c.Boot != e.boot && !e.isInflight(c.RunID, c.ID) {
			stale = append(stale, c)
		}
	}
	if len(stale) > 0 {
		e.log.Info("re-sending calls claimed before a restart", "calls", len(stale))
		e.buffer(stale) // the loop claims them again, within the shares
	}
}

func callKey(run, call string) string { return run + "\x00" + call }

// holdOff keeps a call whose claim or timer was refused out of the next
// scans for a second. A refusal means the projection moved on (the call is
// about to disappear or change); re-proposing at once would only spin.
func (e *Executor) holdOff(c fsm.Call) {
	e.mu.Lock()
	if len(e.held) > 100000 {
		e.held = map[string]time.Time{}
	}
	e.held[callKey(c.RunID, c.ID)] = time.Now().Add(time.Second)
	e.mu.Unlock()
	time.AfterFunc(time.Second, func() {
		e.lower(c) // its queue entry is still where it was
		e.Wake()
	})
}

// lower asks the loop to read c's queue from c.Due at the latest: c was
// skipped (being claimed, held off) and is still queued there.
func (e *Executor) lower(c fsm.Call) {
	o := owner{}
	if !c.IsTimer() {
		o = e.ownerOf(c.RunID)
	}
	e.mu.Lock()
	e.lowerLocked(c, o)
	e.mu.Unlock()
}

func (e *Executor) lowerLocked(c fsm.Call, o owner) {
	e.low.Lower(c.IsTimer(), o.fn, c.Due)
}

func (e *Executor) takeLow() fsm.DueHints {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.low
	e.low = fsm.NoHints()
	return l
}

// skip reports whether a queued call must be left out of a read: it is in
// the buffer, its claim is being proposed, or it was refused a moment ago.
// A call being sent is not skipped: it was claimed, so its queue entry is
// in lq/ at its lease end, and an entry with its key in q/ is a new call
// (the run's next discovery, queued by the answer to this one).
func (e *Executor) skip(run, call string, _ int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := callKey(run, call)
	if e.fair.queued[k] {
		return true
	}
	if until, ok := e.held[k]; ok {
		if time.Now().Before(until) {
			return true
		}
		delete(e.held, k)
	}
	return e.claiming[k]
}

// claimed marks the claim of a call picked from the buffer as decided (it
// stays in flight).
func (e *Executor) claimed(c fsm.Call) {
	e.mu.Lock()
	delete(e.claiming, callKey(c.RunID, c.ID))
	e.mu.Unlock()
}

func (e *Executor) isInflight(run, call string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.inflight[callKey(run, call)]
	return ok
}

func (e *Executor) inflightCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.inflight)
}

// occupyLocked marks a call in flight: it holds a slot and, if s.shared,
// a share of its function and app.
func (e *Executor) occupyLocked(k string, s slot) {
	e.inflight[k] = s
	if s.shared {
		e.fair.take(s.o)
	}
	if s.timer {
		e.firing++
	}
	mInflight.Set(float64(len(e.inflight)))
}

// release frees the slot (and share) of a call that is no longer in flight.
func (e *Executor) release(run, call string) {
	k := callKey(run, call)
	e.mu.Lock()
	if s, ok := e.inflight[k]; ok {
		delete(e.inflight, k)
		if s.shared {
			e.fair.give(s.o)
		}
		if s.timer {
			e.firing--
		}
	}
	n := len(e.inflight)
	e.mu.Unlock()
	mInflight.Set(float64(n))
	e.Wake() // a slot is free
}

// LeaseNext returns the lease that proposers on this node put in records so
// that the calls they make due are claimed for this executor in the same
// entry. It is nil when the executor is not running here, or when its pool
// of calls is full: the calls then wait in the queue for a free slot. It
// bounds the claims by the free slots and the fair shares.
func (e *Executor) LeaseNext() *fsm.LeaseNext {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leaseLocked(nil)
}

// leaseAfter is the lease for the record that ends call c (its answer, or
// a timer that fired): c's slot, and share, pass on to the calls it makes
// due.
func (e *Executor) leaseAfter(c fsm.Call) *fsm.LeaseNext {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.inflight[callKey(c.RunID, c.ID)]
	if !ok || s.timer { // a timer frees no slot
		return e.leaseLocked(nil)
	}
	l := e.leaseLocked(&s)
	if l != nil {
		// The run's next call takes this call's slot, ahead of the calls
		// of runs not yet started: in a burst it would otherwise queue
		// behind all of them (due earlier), and every run would take
		// seconds a step.
		l.Keep = true
	}
	return l
}

func (e *Executor) leaseLocked(freeing *slot) *fsm.LeaseNext {
	free := e.freeLocked() - e.fair.leased
	if freeing != nil {
		// At least the slot it frees, even when calls leased beyond the
		// shares wait in the buffer (records proposed together lease more
		// than a share): its run's next call takes it (LeaseNext.Keep).
		free = max(free+1, 1)
	}
	if e.term == nil || e.draining || free <= 0 {
		return nil
	}
	l := &fsm.LeaseNext{LeaseUntil: time.Now().Add(e.lease()).UnixMilli(), Node: e.cfg.NodeID, Boot: e.boot, Max: free}
	e.fair.bounds(l, freeing)
	return l
}

// Adopt dispatches calls already claimed for this executor (by LeaseNext),
// even if leadership was lost since: like any call, their answers are then
// forwarded to the leader. After Close they are left to their leases.
//
// A lease is sized when its record is proposed; records proposed at the
// same time may together lease more than a share. The calls beyond it
// wait in the buffer, already claimed, and are sent as soon as their
// function and app are below their shares.
func (e *Executor) Adopt(calls []fsm.Call) {
	if len(calls) == 0 || e.calls.Err() != nil {
		return
	}
	for _, c := range calls {
		if c.Node != e.cfg.NodeID || c.Boot != e.boot {
			continue
		}
		o := e.ownerOf(c.RunID)
		k := callKey(c.RunID, c.ID)
		e.mu.Lock()
		if e.fair.queued[k] {
			// The buffer holds this call already: this very claim (adopted
			// twice), or a copy read from the queue before the claim, whose
			// own claim would be refused as stale and leave this one
			// unsent for a whole lease. The claim replaces the copy.
			if old, _ := e.fair.find(k); old.leased && old.c.Gen >= c.Gen {
				e.mu.Unlock()
				continue
			}
			e.fair.remove(k)
		}
		// A call leased to us is claimed already: nobody reads it from the
		// queue again before its lease ends. If its key is still in flight
		// (the answer that leased it not yet released), it waits in the
		// buffer rather than be dropped and stall for a whole lease.
		_, busy := e.inflight[k]
		if busy || (e.term != nil && !e.draining && (e.freeLocked() <= 0 || e.fair.full(o))) {
			e.fair.push(readyCall{c: c, o: o, leased: true})
			mBuffered.Set(float64(len(e.fair.queued)))
			e.mu.Unlock()
			continue
		}
		e.occupyLocked(k, slot{o: o, shared: true})
		e.mu.Unlock()
		e.start(c)
	}
}

// start runs one claimed call (already marked in flight) on an idle
// worker, or on a new one when none is idle, then dispatches the calls its
// answer leased to us.
func (e *Executor) start(c fsm.Call) {
	e.callWG.Add(1)
	e.active.Add(1)
	select {
	case e.work <- c:
	default:
		go e.worker(c)
	}
}

// workerIdle is how long a worker waits for its next call before it ends.
// Workers outlive their call so that a busy executor reuses their stacks:
// a goroutine per call grew a fresh stack through Pebble's read path for
// every call (runtime.newstack was 2-4% of Cairn's CPU in a burst).
const workerIdle = 10 * time.Second

// worker runs calls until none comes for workerIdle, or Close.
func (e *Executor) worker(c fsm.Call) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		e.runCall(c)
		idle.Reset(workerIdle)
		select {
		case c = <-e.work:
		case <-idle.C:
			return
		case <-e.calls.Done():
			return
		}
	}
}

func (e *Executor) runCall(c fsm.Call) {
	defer e.callWG.Done()
	defer e.active.Add(-1) // after Adopt: Drain must not see a gap
	next := e.dispatch(e.calls, c)
	e.release(c.RunID, c.ID)
	e.Adopt(next) // may be the same call again (a new generation)
}

// claimAndDispatch claims due calls (already marked in flight) in one proposal, then sends each claimed
// call to its app. Timers are fired instead of claimed.
func (e *Executor) claimAndDispatch(ctx context.Context, due []fsm.Call) {
	now := time.Now()
	var recs []fsm.Record
	for _, c := range due {
		if c.IsTimer() { // the FSM's own test: fired, never claimed
			recs = append(recs, &fsm.TimerFired{At: now.UnixMilli(), RunID: c.RunID, Call: c.ID, Gen: c.Gen,
				Lease: e.leaseAfter(c)})
		} else {
			// A call still claimed by another node before its lease ends
			// was found gone by reclaim: the claim revokes that one.
			recs = append(recs, &fsm.CallClaimed{At: now.UnixMilli(), RunID: c.RunID, Call: c.ID, Gen: c.Gen,
				LeaseUntil: now.Add(e.lease()).UnixMilli(), Node: e.cfg.NodeID, Boot: e.boot,
				Revoke: c.Claimed && c.Node != e.cfg.NodeID && now.UnixMilli() < c.Due})
		}
	}
	results, err := e.prop.Propose(ctx, recs...)
	if err != nil {
		e.log.Warn("claim failed", "err", err, "calls", len(recs))
	}
	for _, c := range due {
		e.claimed(c)
	}
	for i, c := range due {
		claim, isClaim := recs[i].(*fsm.CallClaimed)
		if err != nil || !isClaim || results[i].Code != fsm.OK {
			if err == nil && results[i].Code != fsm.OK {
				e.holdOff(c)
			} else if err != nil {
				e.lower(c) // still queued: read it again
			}
			e.release(c.RunID, c.ID)
			if err == nil {
				e.Adopt(results[i].Claimed) // a fired timer may lease the next call
			}
			continue
		}
		c.Gen, c.Due = results[i].Gen, claim.LeaseUntil
		e.start(c)
	}
}

// dispatch makes one app call and proposes its outcome. It returns the
// calls that the outcome leased to this executor. c.Due is the lease end.
func (e *Executor) dispatch(ctx context.Context, c fsm.Call) []fsm.Call {
	// The call's logger is made only when something is logged: most calls log nothing.
	log := func() *slog.Logger { return e.log.With("run_id", c.RunID, "call", c.ID, "attempt", c.Attempt) }
	req, err := e.buildRequest(ctx, c)
	var rec *fsm.CallFinished
	start := time.Now()
	if err != nil {
		log().Error("cannot build app request", "err", err)
		rec = &fsm.CallFinished{Err: err.Error()}
	} else {
		rec = e.send(req)
	}
	e.screen(rec, log)
	elapsed := time.Since(start)
	mCallSeconds.Observe(elapsed.Seconds())
	mCalls.WithLabelValues(strconv.Itoa(rec.Status/100) + "xx").Inc()
	rec.At = time.Now().UnixMilli()
	rec.RunID, rec.Call, rec.Gen, rec.Millis = c.RunID, c.ID, c.Gen, elapsed.Milliseconds()
	rec.Jitter = rand.Uint32()
	rec.Lease = e.leaseAfter(c)
	if ctx.Err() != nil {
		// Shutting down mid-call: the answer is unknown, not a failure.
		// Leave the claim; the next leader (or boot) re-sends it.
		log().Info("call interrupted; it will be re-sent", "err", ctx.Err())
		return nil
	}
	if rec.Err != "" {
		log().Warn("app call failed", "status", rec.Status, "err", rec.Err)
	}
	// An answer already refused (its run was cancelled meanwhile, say) is
	// not written: it may be as large as the step output limit. This
	// node's projection holds its own claim, so what it lacks is gone.
	if res, refused, err := e.fsm.Refusal(rec, true); err == nil && refused {
		log().Info("app answer not recorded: "+res.Msg, "code", res.Code)
		return nil
	}
	// The answer is worth recording until the claim's lease ends; after
	// that the call may be re-sent and the answer is refused as stale.
	pctx, cancel := context.WithDeadline(ctx, time.UnixMilli(c.Due))
	defer cancel()
	res, err := e.prop.Propose(pctx, rec)
	if err != nil && e.cfg.Forward != nil {
		// Deposed since the claim: hand the answer to the leader.
		rec.Lease = nil
		var r fsm.Result
		if r, err = e.forward(pctx, rec); err == nil {
			res = []fsm.Result{r}
			mForwarded.WithLabelValues(codeLabel(r.Code)).Inc()
		}
	}
	if err != nil {
		log().Warn("could not record app answer; the call will be re-sent after its lease", "err", err)
		return nil
	}
	if res[0].Code != fsm.OK {
		log().Info("app answer not accepted", "code", res[0].Code, "msg", res[0].Msg)
	}
	return res[0].Claimed
}

// screen keeps values over the step output limit out of the log: the
// answer is recorded with a small OutputTooLarge error in their place
// (fsm.ScreenAnswer), which fails the step, or the run for its result.
func (e *Executor) screen(rec *fsm.CallFinished, log func() *slog.Logger) {
	l, err := e.fsm.Limits()
	if err != nil {
		log().Error("reading the run limits; screening with the defaults", "err", err)
		l = fsm.DefaultLimits
	}
	if fsm.ScreenAnswer(rec, l) {
		mScreened.Inc()
		log().Warn("app answer over the step output limit; recorded as an error", "limit", fsm.SizeText(l.StepOutputBytes))
	}
}

// forward retries Config.Forward with backoff until it succeeds or ctx ends.
func (e *Executor) forward(ctx context.Context, rec *fsm.CallFinished) (fsm.Result, error) {
	wait := 50 * time.Millisecond
	for {
		r, err := e.cfg.Forward(ctx, rec)
		if err == nil {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return fsm.Result{}, fmt.Errorf("forwarding the answer: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

func codeLabel(c fsm.Code) string {
	if c == fsm.OK {
		return "accepted"
	}
	return "refused"
}

// buildRequest reads the run from the projection and builds the call.
func (e *Executor) buildRequest(ctx context.Context, c fsm.Call) (*http.Request, error) {
	run, err := e.fsm.Run(c.RunID)
	if err != nil || run == nil {
		return nil, fmt.Errorf("run %s: %v", c.RunID, err)
	}
	fn, err := e.fsm.Function(run.FnID)
	if err != nil || fn == nil {
		return nil, fmt.Errorf("function %q is no longer registered", run.FnID)
	}
	if run.Endpoint != "" {
		return e.reentry(ctx, run, fn, c)
	}
	body := protocol.CallRequest{
		Steps:   make(map[string]json.RawMessage, len(run.Stack)),
		Version: run.Version,
		Ctx: protocol.CallCtx{RunID: run.ID, Attempt: c.Attempt, MaxAttempts: fn.MaxAttempts(),
			DisableImmediateExecution: run.ForcePlan, Stack: protocol.CallStack{Stack: run.Stack, Current: len(run.Stack)}},
	}
	if body.Ctx.Stack.Stack == nil {
		body.Ctx.Stack.Stack = []string{}
	}
	if !e.cfg.NoCheckpointing && c.ID == fsm.DiscoveryCall {
		// Only a discovery call may run several steps (the SDK checks it
		// too); the claim's generation fences its checkpoints.
		body.Ctx.FnID, body.Ctx.QiID = fsm.FunctionUUID(fn.ID), fsm.QueueItemID(c.RunID, c.ID, c.Gen)
	}
	for _, id := range run.EventIDs {
		ev, err := e.fsm.Event(id)
		if err != nil || ev == nil {
			return nil, fmt.Errorf("event %s of run: %v", id, err)
		}
		body.Events = append(body.Events, ev)
	}
	body.Event = body.Events[0]
	for _, id := range run.Stack {
		m, err := e.fsm.Memo(run.ID, id)
		if err != nil {
			return nil, err
		}
		body.Steps[id] = m
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	var sig string
	if e.cfg.Keys.Enabled() {
		// The SDK checks the signature over the canonical form of the
		// body it parsed (protocol §2.2), so that form is what is sent.
		if raw, sig, err = e.cfg.Keys.Primary.SignJSON(raw, time.Now()); err != nil {
			return nil, fmt.Errorf("signing the call: %w", err)
		}
	}
	u, err := url.Parse(fn.URL)
	if err != nil {
		return nil, fmt.Errorf("bad function URL %q: %w", fn.URL, err)
	}
	q := u.Query()
	q.Set("fnId", fn.ID)
	q.Set("stepId", c.ID)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Run-ID", run.ID)
	req.Header.Set("X-Inngest-Step-ID", c.ID)
	req.Header.Set("X-Inngest-Req-Version", strconv.Itoa(run.Version))
	req.Header.Set("X-Inngest-Server-Kind", e.cfg.ServerKind)
	req.Header.Set("User-Agent", "cairn")
	replayable(req)
	if sig != "" {
		req.Header.Set(signing.Header, sig)
	}
	return req, nil
}

// send performs the call and reduces the answer to a record.
func (e *Executor) send(req *http.Request) *fsm.CallFinished {
	ctx, cancel := context.WithTimeout(req.Context(), e.cfg.CallTimeout)
	defer cancel()
	resp, err := e.cfg.Client.Do(req.WithContext(ctx))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &fsm.CallFinished{Err: fmt.Sprintf("app call timed out after %s", e.cfg.CallTimeout)}
		}
		return &fsm.CallFinished{Err: err.Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, e.cfg.MaxBodyBytes+1))
	if err != nil {
		return &fsm.CallFinished{Status: resp.StatusCode, Err: "reading app response: " + err.Error()}
	}
	if int64(len(body)) > e.cfg.MaxBodyBytes {
		return &fsm.CallFinished{Status: resp.StatusCode, Err: fmt.Sprintf("app response larger than %d bytes", e.cfg.MaxBodyBytes)}
	}
	r := &response{status: resp.StatusCode, header: resp.Header, body: body}
	if r.status == http.StatusCreated {
		if err := unwrapStream(r); err != nil {
			return &fsm.CallFinished{Status: resp.StatusCode, Err: err.Error()}
		}
	}
	if err := e.checkSignature(r); err != nil {
		mBadSignatures.Inc()
		e.log.Warn("app answer refused: bad signature", "url", req.URL.Redacted(), "status", r.status, "err", err)
		return &fsm.CallFinished{Status: r.status, Err: "app response signature: " + err.Error()}
	}
	return finishedFrom(r, time.Now())
}

// checkSignature verifies, in production mode, that an SDK's answer is
// signed with our key (protocol §2.3): an answer that is not could come
// from anyone between Cairn and the app. Answers that are not from an SDK
// fail anyway, and a 401 is the SDK refusing our own signature.
func (e *Executor) checkSignature(r *response) error {
	if !e.cfg.Keys.Enabled() || r.header.Get("X-Inngest-SDK") == "" || r.status == http.StatusUnauthorized {
		return nil
	}
	_, err := e.cfg.Keys.Verify(r.header.Get(signing.Header), r.body, time.Now())
	return err
}

// queueCursor is where the executor's next read of one queue starts: key
// (nil: the head) holding a call due at due (math.MaxInt64: nothing known
// to be queued; 0: unknown, read now). pos is the queue's position of the
// first call due at a time.
type queueCursor struct {
	key []byte
	due int64
	pos func(t int64) []byte
}

func timerCursor() queueCursor { return queueCursor{pos: fsm.TimerQueueKey} }

func callCursor(fn string, due int64) *queueCursor {
	return &queueCursor{due: due, pos: func(t int64) []byte { return fsm.CallQueueKey(fn, t) }}
}

// lower moves the cursor back to t when a call was queued there.
func (q *queueCursor) lower(t int64) {
	if t != math.MaxInt64 && t <= q.due {
		q.key, q.due = q.pos(t), t
	}
}

// stopped records where a read ended. Past the end, the cursor waits just
// after now: anything queued later comes with a hint.
func (q *queueCursor) stopped(key []byte, due, now int64) {
	if key == nil {
		q.key, q.due = q.pos(now+1), math.MaxInt64
		return
	}
	q.key, q.due = key, due
}

// queueCursors are the cursors of the timer queue and of the queues of
// the functions that may have calls queued.
type queueCursors struct {
	all    bool // read every queue from its head next
	timers queueCursor
	calls  map[string]*queueCursor // by function id
}

func newQueueCursors() *queueCursors {
	return &queueCursors{all: true, timers: timerCursor(), calls: map[string]*queueCursor{}}
}

// apply moves the cursors back to where h says calls were queued. After a
// full-read request every queue is read from its head; the functions with
// a queue are listed by queued.
func (q *queueCursors) apply(h fsm.DueHints, queued func() ([]string, error), log *slog.Logger) {
	if h.All || q.all {
		fns, err := queued()
		if err != nil {
			log.Error("listing queues", "err", err)
		} else {
			q.all = false
			q.timers = timerCursor()
			for _, fn := range fns {
				q.calls[fn] = callCursor(fn, 0)
			}
		}
	}
	q.timers.lower(h.Timers)
	for fn, t := range h.Calls {
		c := q.calls[fn]
		if c == nil {
			c = callCursor(fn, math.MaxInt64)
			q.calls[fn] = c
		}
		c.lower(t)
	}
}

// tidy forgets the cursors of functions with nothing queued: a call queued
// later comes with a hint, which makes a cursor again.
func (q *queueCursors) tidy() {
	for fn, c := range q.calls {
		if c.due == math.MaxInt64 {
			delete(q.calls, fn)
		}
	}
}

// appIdleTimeout is how long a connection to an app stays pooled. Apps'
// servers commonly drop idle connections at 5 s (Node's keepAliveTimeout):
// one kept longer may be closing just as a call goes out on it.
const appIdleTimeout = 4 * time.Second

// appClient is the HTTP client of app calls: connections kept for the
// calls in flight, dialled only where hosts allows (nil: anywhere).
func appClient(hosts *hostpolicy.Policy, inflight int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:  hosts.Dialer(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}),
		MaxIdleConns: inflight, MaxIdleConnsPerHost: inflight, IdleConnTimeout: appIdleTimeout,
	},
		// A redirect is the app's answer, not an address to call: an
		// app could otherwise aim Cairn's calls at any URL.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// replayable lets the HTTP transport send a call again, on a new
// connection, when the pooled one it tried was closed by the app before
// it answered (an EOF that says nothing about the call). A call may be
// sent twice anyway (its claim's generation fences the answers), so this
// is safe; the empty header value marks the request without sending
// anything to the app.
func replayable(req *http.Request) { req.Header["Idempotency-Key"] = nil }
