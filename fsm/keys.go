package fsm

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
)

// Key layout of the projection. Every key starts with a short prefix naming
// its table; ids never contain '\x00', which separates key parts.
//
//	m/applied                      applied index + digest chain
//	m/limits                       the run limits of the last LimitsSet
//	a/<app>                        App
//	f/<fn>                         Function
//	t/<event name>\0<fn>           trigger index (empty value)
//	e/<event>                      event JSON
//	eo/<event>                     EventOrigin: who sent it, the event it replays (when known)
//	ei/<user id>                   idempotency: first event with that user id
//	er/<event>\0<run>              runs started by an event (empty value)
//	r/<run>                        Run
//	s/<run>\0<step>                memoized step value (raw JSON)
//	c/<run>\0<call>                Call
//	qt/<due ms, 8 bytes BE>/<run>\0<call>  unclaimed timers by due time (empty value)
//	qf/<fn>\0<due ms, 8 bytes BE>/<run>\0<call> unclaimed app calls of a function by due time (empty value)
//	lq/<lease end, 8 bytes BE>/<run>\0<call> claimed calls by lease end (empty value)
//	h/<run>\0<seq, 8 bytes BE>     HistoryEntry
//	pw/<event>\0<run>\0<call>      waitForEvent pauses by event name
//	sg/<signal>                    the wait for a signal: "<run>\0<call>"
//	iv/<correlation id>            the invoke waiting for a child: "<run>\0<call>"
//	co/<event>\0<run>\0<n>         cancelOn conditions by event name (cancelEntry)
//	fa/<fn>\0<run>                 running runs per function (bulk cancel)
//	fr/<fn>\0<created ms BE><run>  every run of a function by creation time (replays, listings)
//	rp/<replay>                    a bulk replay's state (Replay)
//	rpr/<replay>\0<seq, 4 bytes BE> one run of a bulk replay and its rerun (ReplayRun)
//	rpa/<replay>                   bulk replays still starting runs (empty value)
//	ik/<fn>\0<key>                 function idempotency keys (first run's time)
//	xc/<fn>                        cron schedules of a function ([]string)
//	cr/<fn>\0<scheduled ms BE>     cron times already fired
//	nd/<node id>                   NodeSeen: a member's Raft and HTTP addresses
//	cc/<conc key>                  concurrency counter: slots taken (8 bytes BE)
//	cw/<conc key>\0<order, 8 bytes BE><run>\0<call> calls waiting for a slot, oldest run first (empty value)
//	rt/<"th"|"rl">\0<fn>\0<key>     throttle / rate-limit GCRA state (gcraState)
//	db/<fn>\0<key>                 pending debounced run (debounceState)
//	bt/<fn>\0<key>                 open batch run (batchState)
//	sl/<fn>\0<key>                 singleton holder: the run id
//	m/queues-split                 the projection's queues are qt/ and qf/ (queues.go)
//	vp/<key>\0<n, 4 bytes BE>       part n of the large value at <key> (parts.go)
const sep = "\x00"

var (
	keyApplied = []byte("m/applied")
	keyLimits  = []byte("m/limits")
)

func keyApp(id string) []byte           { return []byte("a/" + id) }
func keyFn(id string) []byte            { return []byte("f/" + id) }
func keyTrigger(ev, fn string) []byte   { return []byte("t/" + ev + sep + fn) }
func prefixTrigger(ev string) []byte    { return []byte("t/" + ev + sep) }
func keyEvent(id string) []byte         { return []byte("e/" + id) }
func keyIdem(id string) []byte          { return []byte("ei/" + id) }
func keyEventOrigin(id string) []byte   { return []byte("eo/" + id) }
func keyEventRun(ev, run string) []byte { return []byte("er/" + ev + sep + run) }
func prefixEventRuns(ev string) []byte  { return []byte("er/" + ev + sep) }
func keyRun(id string) []byte           { return []byte("r/" + id) }
func keyStep(run, step string) []byte   { return []byte("s/" + run + sep + step) }
func keyCall(run, call string) []byte   { return []byte("c/" + run + sep + call) }
func prefixCalls(run string) []byte     { return []byte("c/" + run + sep) }
func prefixHistory(run string) []byte   { return []byte("h/" + run + sep) }
func keyHistory(run string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(prefixHistory(run), seq)
}

var prefixAllCalls = []byte("c/")

// splitCallKey returns the run and call ids of a key made by keyCall.
func splitCallKey(k []byte) (run, call string, ok bool) {
	if !bytes.HasPrefix(k, prefixAllCalls) {
		return "", "", false
	}
	return strings.Cut(string(k[len(prefixAllCalls):]), sep)
}

func keyWait(ev, run, call string) []byte { return []byte("pw/" + ev + sep + run + sep + call) }
func prefixWaits(ev string) []byte        { return []byte("pw/" + ev + sep) }
func keySignal(sig string) []byte         { return []byte("sg/" + sig) }
func keyInvoke(corr string) []byte        { return []byte("iv/" + corr) }
func keyCancelOn(ev, run string, n int) []byte {
	return []byte("co/" + ev + sep + run + sep + strconv.Itoa(n))
}
func prefixCancelOn(ev string) []byte { return []byte("co/" + ev + sep) }
func keyActive(fn, run string) []byte { return []byte("fa/" + fn + sep + run) }
func prefixActive(fn string) []byte   { return []byte("fa/" + fn + sep) }
func keyFnRun(fn string, created int64, run string) []byte {
	return append(binary.BigEndian.AppendUint64([]byte("fr/"+fn+sep), uint64(created)), run...)
}
func prefixFnRuns(fn string) []byte { return []byte("fr/" + fn + sep) }
func keyReplay(id string) []byte    { return []byte("rp/" + id) }
func keyReplayRun(id string, seq int) []byte {
	return binary.BigEndian.AppendUint32([]byte("rpr/"+id+sep), uint32(seq))
}
func prefixReplayRuns(id string) []byte { return []byte("rpr/" + id + sep) }
func keyReplayActive(id string) []byte  { return []byte("rpa/" + id) }

var prefixReplaysActive = []byte("rpa/")

func keyFnIdem(fn, key string) []byte { return []byte("ik/" + fn + sep + key) }
func keyCronFn(fn string) []byte      { return []byte("xc/" + fn) }
func keyCronFired(fn string, at int64) []byte {
	return binary.BigEndian.AppendUint64([]byte("cr/"+fn+sep), uint64(at))
}

var prefixCronFns = []byte("xc/")

var prefixParts = []byte("vp/")

// keyPart is the key of part i of the value at k.
func keyPart(k []byte, i int) []byte {
	p := make([]byte, 0, len(prefixParts)+len(k)+5)
	p = append(append(append(p, prefixParts...), k...), 0)
	return binary.BigEndian.AppendUint32(p, uint32(i))
}

func keyNode(id string) []byte { return []byte("nd/" + id) }

// Flow control: counters and wait lists of concurrency keys, rate state,
// debounce, batch and singleton entries.
func keyConcCount(key string) []byte      { return []byte("cc/" + key) }
func prefixConcWait(key string) []byte    { return []byte("cw/" + key + sep) }
func keyRate(kind, fn, key string) []byte { return []byte("rt/" + kind + sep + fn + sep + key) }
func keyDebounce(fn, key string) []byte   { return []byte("db/" + fn + sep + key) }
func keyBatch(fn, key string) []byte      { return []byte("bt/" + fn + sep + key) }
func keySingleton(fn, key string) []byte  { return []byte("sl/" + fn + sep + key) }

// keyConcWait orders a blocked call among the waiters of a key: by its
// run's creation time, minus its priority advantage.
func keyConcWait(key string, sort int64, run, call string) []byte {
	k := binary.BigEndian.AppendUint64(prefixConcWait(key), uint64(sort)^(1<<63))
	return append(k, run+sep+call...)
}

// The queues, ordered by due time. Unclaimed timers wait in qt/ and
// unclaimed app calls in qf/, one queue per function, so that a backlog of
// one function's calls is never read through to find a timer or another
// function's call. lq/ holds claimed calls by lease end. It is apart
// because every step moves a claim: the dead entries it leaves behind in
// lq/ must not slow down the frequent reads of the others.
var (
	prefixTimerQueue = []byte("qt/")
	prefixFnQueues   = []byte("qf/")
	prefixLeaseQueue = []byte("lq/")
)

// prefixFnQueue is the queue of function fn's unclaimed app calls.
func prefixFnQueue(fn string) []byte { return []byte("qf/" + fn + sep) }

func queueKey(prefix []byte, due int64, run, call string) []byte {
	k := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), uint64(due))
	return append(append(k, '/'), run+sep+call...)
}

// parseQueueKey splits a key of the queue at prefix into due time, run and
// call.
func parseQueueKey(prefix, k []byte) (due int64, run, call string, ok bool) {
	n := len(prefix)
	if len(k) < n+9 || !bytes.HasPrefix(k, prefix) {
		return 0, "", "", false
	}
	due = int64(binary.BigEndian.Uint64(k[n:]))
	run, call, ok = strings.Cut(string(k[n+9:]), sep)
	return due, run, call, ok
}

// keyCallQueue is a call's entry: in lq/ while claimed, else in qt/ for a
// timer or in its function's qf/ queue (fn: its run's function).
func keyCallQueue(c *Call, fn string) []byte {
	switch {
	case c.Claimed:
		return queueKey(prefixLeaseQueue, c.Due, c.RunID, c.ID)
	case c.IsTimer():
		return queueKey(prefixTimerQueue, c.Due, c.RunID, c.ID)
	}
	return queueKey(prefixFnQueue(fn), c.Due, c.RunID, c.ID)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
