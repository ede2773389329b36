package fsm

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// Flow control. Every admission decision is taken here, in Apply, from the
// record's time and the projected state, so every replica and every replay
// takes the same one:
//
//   - batch:       the event joins its key's open batch run, or opens one
//   - rate limit:  over the limit, the event starts no run (a skipped run)
//   - singleton:   a running run of the key skips (or cancels) the new one
//   - debounce:    the key's pending run takes the event and waits longer
//   - throttle:    over the limit, the run's start waits (GCRA; see Throttle)
//   - concurrency: a step is claimed only with a free slot in every key of
//     its run; otherwise it waits in the key's list, oldest run first less
//     the run's priority, and a finished step hands its slot on.

// eventRef is an event a run is started for.
type eventRef struct {
	ID, Name string
	JSON     []byte
}

// admit applies a function's flow control to one triggering event and
// returns the run it started, joined or skipped (nil if none).
func (t *txn) admit(fn *Function, at int64, ev eventRef) *Run {
	if b := fn.Batch; b != nil {
		if t.match(b.If, ev.JSON, nil) {
			return t.addToBatch(fn, at, ev)
		}
	}
	if rl := fn.RateLimit; rl != nil {
		key := t.flowKey(rl.Key, ev.JSON)
		// A rate limit lets Limit runs through at once, then one per
		// Period/Limit: no waiting, the rest are skipped.
		if _, ok := t.gcra(keyRate("rl", fn.ID, key), at, rl.Limit, rl.PeriodMs, rl.Limit-1, false); !ok {
			return t.skipRun(fn, at, ev, fmt.Sprintf("rate limit of %d per %dms reached for key %q", rl.Limit, rl.PeriodMs, key))
		}
	}
	if s := fn.Singleton; s != nil {
		key := t.flowKey(s.Key, ev.JSON)
		if holder := string(t.getRaw(keySingleton(fn.ID, key))); holder != "" {
			if other := t.run(holder); other != nil && !other.Done() {
				if s.Mode != "cancel" {
					return t.skipRun(fn, at, ev, "singleton: run "+holder+" is running for key "+fmt.Sprintf("%q", key))
				}
				t.finish(other, StatusCancelled, at, nil, errJSON("RunCancelled", "replaced by a newer singleton run"))
			}
		}
	}
	if fn.Debounce != nil {
		return t.debounce(fn, at, ev)
	}
	return t.startRun(fn, at, []eventRef{ev}, "", at, "")
}

// flowKey evaluates a key expression on the event ("" without one). An
// expression that fails to evaluate puts the event under the key "".
func (t *txn) flowKey(src string, js []byte) string {
	if src == "" {
		return ""
	}
	k, err := t.evalKey(src, js)
	if err != nil {
		return ""
	}
	return k
}

// gcraState is the theoretical arrival time of a rate key (GCRA).
type gcraState struct {
	TAT int64 `msgpack:"tat"`
}

// gcra runs the generic cell rate algorithm for limit per periodMs with
// `burst` extra cells at once. With wait it always admits, at the returned
// time; without, it admits now or refuses (and then changes nothing).
func (t *txn) gcra(k []byte, at int64, limit int, periodMs int64, burst int, wait bool) (int64, bool) {
	interval := max(periodMs/int64(max(limit, 1)), 1)
	tolerance := interval * int64(max(burst, 0))
	var st gcraState
	t.get(k, &st)
	tat := max(st.TAT, at)
	allowed := max(at, tat-tolerance)
	if allowed > at && !wait {
		return 0, false
	}
	st.TAT = max(tat, allowed) + interval
	t.put(k, &st)
	return allowed, true
}

// Throttle builds the spec of an SDK `throttle {limit, period, key, burst}`
// with Inngest's admission: limit×max(burst,1) runs start at once, then one
// every period/limit (Inngest's GCRA: emission period/limit, tolerance
// period×max(burst,1)). The spec's Burst is the number of runs past the
// first that may start at once, which is what Apply's GCRA has always read;
// so the new behaviour lives in what the API records, definitions already
// in the log keep the math they were applied with, and a node of the
// previous release computes the same admissions from a new record.
func Throttle(limit int, periodMs int64, key string, burst int) *RateSpec {
	limit = max(limit, 1)
	return &RateSpec{Limit: limit, PeriodMs: periodMs, Key: key, Burst: limit*max(burst, 1) - 1}
}

// skipRun records a run that flow control refused, so that the event shows
// what happened to it.
func (t *txn) skipRun(fn *Function, at int64, ev eventRef, why string) *Run {
	run := &Run{ID: runID(ev.ID, fn.ID, at), FnID: fn.ID, AppID: fn.AppID, EventIDs: []string{ev.ID},
		Status: StatusSkipped, CreatedAt: at, EndedAt: at, Version: -1, Error: errJSON("RunSkipped", why)}
	if t.run(run.ID) != nil {
		return nil
	}
	t.addRun(run)
	t.putRaw(keyEventRun(ev.ID, run.ID), nil)
	t.history(run, HistoryEntry{At: at, Type: HistRunSkipped, Name: ev.Name, Detail: why})
	return run
}

// debounceState points at a key's pending debounced run.
type debounceState struct {
	RunID   string `msgpack:"run"`
	FirstAt int64  `msgpack:"first"`
}

// debounce gives the event to the key's pending run, pushing its start to
// Period after this event (but no later than Timeout after the first), or
// creates that pending run.
func (t *txn) debounce(fn *Function, at int64, ev eventRef) *Run {
	d := fn.Debounce
	k := keyDebounce(fn.ID, t.flowKey(d.Key, ev.JSON))
	due := at + d.PeriodMs
	var st debounceState
	if t.get(k, &st) {
		if run := t.run(st.RunID); run != nil && !run.Done() && run.StartedAt == 0 {
			if d.TimeoutMs > 0 {
				due = min(due, st.FirstAt+d.TimeoutMs)
			}
			run.EventIDs = []string{ev.ID}
			t.putRaw(keyEventRun(ev.ID, run.ID), nil)
			t.moveCall(run.ID, DiscoveryCall, due)
			t.history(run, HistoryEntry{At: at, Type: HistRunDebounced, Name: ev.Name,
				Detail: fmt.Sprintf("now with event %s, starts at %d", ev.ID, due)})
			return run
		}
	}
	run := t.startRun(fn, at, []eventRef{ev}, "", due, WaitingDebounce)
	if run != nil {
		t.put(k, &debounceState{RunID: run.ID, FirstAt: at})
		run.AdmitKeys = append(run.AdmitKeys, string(k))
	}
	return run
}

// batchState points at a key's open batch run.
type batchState struct {
	RunID string `msgpack:"run"`
	Count int    `msgpack:"n"`
}

// addToBatch adds the event to the key's open batch run; a full batch
// starts at once, a partial one when its timeout ends.
func (t *txn) addToBatch(fn *Function, at int64, ev eventRef) *Run {
	b := fn.Batch
	k := keyBatch(fn.ID, t.flowKey(b.Key, ev.JSON))
	var st batchState
	if t.get(k, &st) {
		if run := t.run(st.RunID); run != nil && !run.Done() && run.StartedAt == 0 {
			run.EventIDs = append(run.EventIDs, ev.ID)
			t.putRaw(keyEventRun(ev.ID, run.ID), nil)
			st.Count++
			t.history(run, HistoryEntry{At: at, Type: HistRunBatched, Name: ev.Name,
				Detail: fmt.Sprintf("event %s (%d of %d)", ev.ID, st.Count, b.MaxSize)})
			if st.Count >= b.MaxSize {
				t.del(k)
				t.moveCall(run.ID, DiscoveryCall, at)
			} else {
				t.put(k, &st)
			}
			return run
		}
	}
	due, waiting := at+b.TimeoutMs, WaitingBatch
	if b.MaxSize <= 1 {
		due, waiting = at, ""
	}
	run := t.startRun(fn, at, []eventRef{ev}, "", due, waiting)
	if run != nil && waiting != "" {
		t.put(k, &batchState{RunID: run.ID, Count: 1})
		run.AdmitKeys = append(run.AdmitKeys, string(k))
	}
	return run
}

// moveCall changes when a queued (unclaimed) call is due.
func (t *txn) moveCall(runID, callID string, due int64) {
	c := &Call{}
	if !t.get(keyCall(runID, callID), c) || c.Claimed {
		return
	}
	t.unqueue(c)
	c.Due = due
	t.addCall(c)
}

// setupFlow fills a new run's flow-control fields: concurrency keys and
// limits, priority, singleton entry; and returns when a throttle lets it
// start (at the earliest `due`).
func (t *txn) setupFlow(fn *Function, run *Run, at, due int64, js []byte) int64 {
	for i, c := range fn.Concurrency {
		var key string
		switch c.Scope {
		case "env", "account":
			key = c.Scope + sep + t.flowKey(c.Key, js)
		default:
			key = "fn" + sep + fn.ID + sep + fmt.Sprint(i) + sep + t.flowKey(c.Key, js)
		}
		run.ConcKeys = append(run.ConcKeys, key)
		run.ConcLimits = append(run.ConcLimits, c.Limit)
	}
	if fn.Priority != "" {
		if v, err := t.eval(fn.Priority, js); err == nil {
			run.Priority = min(max(toInt(v), -600), 600)
		}
	}
	if s := fn.Singleton; s != nil {
		k := keySingleton(fn.ID, t.flowKey(s.Key, js))
		t.putRaw(k, []byte(run.ID))
		run.AdmitKeys = append(run.AdmitKeys, string(k))
	}
	if th := fn.Throttle; th != nil {
		key := t.flowKey(th.Key, js)
		allowed, _ := t.gcra(keyRate("th", fn.ID, key), due, th.Limit, th.PeriodMs, th.Burst, true)
		if allowed > due {
			run.Waiting = fmt.Sprintf("throttled until %d (key %q)", allowed, key)
			t.history(run, HistoryEntry{At: at, Type: HistRunThrottled, Detail: run.Waiting})
		}
		due = allowed
	}
	return due
}

// toInt reads a priority. A float that int64 cannot hold (NaN, ±Inf, past
// ±2^63) becomes math.MinInt64, as amd64 has always converted it: Go leaves
// that conversion to the CPU, and arm64 saturates instead (0 for NaN), which
// would put the run elsewhere in line on such a replica.
func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case uint64:
		return int64(min(n, 1<<62))
	case float64:
		if !(n >= -(1<<63) && n < 1<<63) {
			return math.MinInt64
		}
		return int64(n)
	}
	return 0
}

// started clears what held a run back once its first call is claimed: a
// debounce or batch can no longer change it.
func (t *txn) started(run *Run) {
	keep := run.AdmitKeys[:0]
	for _, k := range run.AdmitKeys {
		if strings.HasPrefix(k, "db/") || strings.HasPrefix(k, "bt/") {
			var st struct {
				RunID string `msgpack:"run"`
			}
			if t.get([]byte(k), &st) && st.RunID == run.ID {
				t.del([]byte(k))
			}
			continue
		}
		keep = append(keep, k)
	}
	run.AdmitKeys = keep
	run.Waiting = ""
}

// ended drops a finished run's singleton entry (and any admission entry).
func (t *txn) ended(run *Run) {
	for _, k := range run.AdmitKeys {
		v := t.getRaw([]byte(k))
		if strings.HasPrefix(k, "sl/") && string(v) == run.ID {
			t.del([]byte(k))
		} else if !strings.HasPrefix(k, "sl/") && v != nil {
			var st struct {
				RunID string `msgpack:"run"`
			}
			if t.get([]byte(k), &st) && st.RunID == run.ID {
				t.del([]byte(k))
			}
		}
	}
	run.AdmitKeys = nil
}

// acquire takes a slot in each of the run's concurrency keys, or returns
// the first key that is full.
func (t *txn) acquire(run *Run) string {
	for i, key := range run.ConcKeys {
		if t.counter(key) >= int64(run.ConcLimits[i]) {
			return key
		}
	}
	for _, key := range run.ConcKeys {
		t.setCounter(key, t.counter(key)+1)
	}
	return ""
}

// release gives back a call's slots and wakes the first waiter of each key.
func (t *txn) release(c *Call) {
	if !c.Slots {
		return
	}
	c.Slots = false
	run := t.run(c.RunID)
	if run == nil {
		return
	}
	for _, key := range run.ConcKeys {
		t.setCounter(key, max(t.counter(key)-1, 0))
		t.wakeWaiter(key)
	}
}

// wakeWaiter puts the first call waiting for a key back in the due queue;
// it will compete for the slot again when claimed.
func (t *txn) wakeWaiter(key string) {
	var runID, callID string
	p := prefixConcWait(key)
	t.scan(p, func(k, _ []byte) bool {
		if len(k) >= len(p)+8 {
			runID, callID, _ = strings.Cut(string(k[len(p)+8:]), sep)
		}
		return false
	})
	c := &Call{}
	if runID == "" || !t.get(keyCall(runID, callID), c) || c.Blocked != key {
		return
	}
	t.unqueue(c)
	c.Blocked = ""
	c.Due = t.at
	t.addCall(c)
	if run := t.run(runID); run != nil && strings.HasPrefix(run.Waiting, "concurrency") {
		run.Waiting = ""
	}
}

func (t *txn) counter(key string) int64 {
	v := t.getRaw(keyConcCount(key))
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func (t *txn) setCounter(key string, n int64) {
	if n == 0 {
		t.del(keyConcCount(key))
		return
	}
	t.putRaw(keyConcCount(key), binary.BigEndian.AppendUint64(nil, uint64(n)))
}
