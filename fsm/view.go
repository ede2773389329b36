package fsm

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble"
	"github.com/vmihailenco/msgpack/v5"
)

// The read side. Views read committed state straight from Pebble, so they
// are safe to call concurrently with Apply; a view may observe the result of
// a newer batch than the one before it, never a half-applied one.

func (f *FSM) getRaw(k []byte) ([]byte, error) {
	f.dbMu.RLock()
	v, closer, err := f.db.Get(k)
	if err == pebble.ErrNotFound {
		f.dbMu.RUnlock()
		return nil, nil
	}
	if err != nil {
		f.dbMu.RUnlock()
		return nil, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	f.dbMu.RUnlock()
	if _, _, ok := parseHeader(out); !ok {
		return out, nil
	}
	// Stored in parts: read the header again and the parts from one
	// iterator, so that they come from the same state.
	var whole []byte
	err = f.scan(k, append(k[:len(k):len(k)], 0), false, func(_, v []byte) bool {
		whole = append([]byte(nil), v...)
		return false
	})
	return whole, err
}

func (f *FSM) get(k []byte, v any) (bool, error) {
	raw, err := f.getRaw(k)
	if raw == nil || err != nil {
		return false, err
	}
	return true, decodeRow(k, raw, v)
}

// decodeRow decodes a stored row for a view. The views' one rule for a row
// they cannot decode: fail with an error naming its key. Skipping it would
// hide a corrupt or newer-format row, and views would disagree on it.
func decodeRow(k, raw []byte, v any) error {
	if err := msgpack.Unmarshal(raw, v); err != nil {
		return errRow(k, err)
	}
	return nil
}

func errRow(k []byte, err error) error { return fmt.Errorf("fsm: undecodable row %q: %w", k, err) }

var errBadKey = errors.New("malformed key")

// scan calls fn with the keys in [lower, upper) and their values, whole
// (see parts.go), until fn returns false.
func (f *FSM) scan(lower, upper []byte, reverse bool, fn func(k, v []byte) bool) error {
	var perr error
	err := f.scanStored(lower, upper, reverse, func(it *pebble.Iterator) bool {
		var v []byte
		if v, perr = wholeValue(it); perr != nil {
			return false
		}
		return fn(it.Key(), v)
	})
	if err == nil {
		err = perr
	}
	return err
}

// scanStored calls fn at each key in [lower, upper) until it returns false;
// values are as stored (a large one is the header of its parts).
func (f *FSM) scanStored(lower, upper []byte, reverse bool, fn func(it *pebble.Iterator) bool) error {
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	first, next := it.First, it.Next
	if reverse {
		first, next = it.Last, it.Prev
	}
	for ok := first(); ok; ok = next() {
		if !fn(it) {
			break
		}
	}
	return it.Error()
}

// Run returns a run, or nil if there is none with that id.
func (f *FSM) Run(id string) (*Run, error) {
	r := &Run{}
	ok, err := f.getRow(keyRun(id), r)
	if !ok {
		return nil, err
	}
	return r, err
}

// getRow is get for a run or a call: from the row cache when it holds it.
func (f *FSM) getRow(k []byte, v any) (bool, error) {
	if raw, ok := f.rows.get(k); ok {
		return true, decodeRow(k, raw, v)
	}
	return f.get(k, v)
}

// Function returns a function, or nil. The result is shared: read only.
func (f *FSM) Function(id string) (*Function, error) {
	cached, gen := f.fns.get(id)
	if cached != nil {
		return cached, nil
	}
	fn := &Function{}
	ok, err := f.get(keyFn(id), fn)
	if !ok || err != nil {
		return nil, err
	}
	f.fns.put(id, fn, gen)
	return fn, nil
}

// App returns an app, or nil.
func (f *FSM) App(id string) (*App, error) {
	a := &App{}
	ok, err := f.get(keyApp(id), a)
	if !ok {
		return nil, err
	}
	return a, err
}

// SyncRefused says why Apply would refuse r now ("" if it would not).
func (f *FSM) SyncRefused(r *AppSynced) (string, error) {
	old, err := f.App(r.AppID)
	if err != nil {
		return "", err
	}
	var ferr error
	msg := syncRefusal(r, old, func(id string) *Function {
		fn, err := f.Function(id)
		if err != nil {
			ferr = err
		}
		return fn
	})
	return msg, ferr
}

// Apps lists all synced apps.
func (f *FSM) Apps() ([]App, error) {
	var out []App
	p := []byte("a/")
	var derr error
	err := f.scan(p, prefixEnd(p), false, func(k, v []byte) bool {
		var a App
		if derr = decodeRow(k, v, &a); derr != nil {
			return false
		}
		out = append(out, a)
		return true
	})
	return out, errors.Join(err, derr)
}

// BulkCancelMatches reports whether r would cancel at least one run now.
func (f *FSM) BulkCancelMatches(r *BulkCancel) (bool, error) {
	p := prefixActive(r.FnID)
	var found bool
	var getErr error
	err := f.scan(p, prefixEnd(p), false, func(k, _ []byte) bool {
		var run *Run
		run, getErr = f.Run(string(k[len(p):]))
		found = run != nil && r.cancels(run)
		return !found && getErr == nil
	})
	return found, errors.Join(err, getErr)
}

// Event returns an event's JSON, or nil.
func (f *FSM) Event(id string) ([]byte, error) { return f.getRaw(keyEvent(id)) }

// EventOrigin returns who sent a stored event and the event it replays
// (zero when the log does not say: older events, emitted events).
func (f *FSM) EventOrigin(id string) (EventOrigin, error) {
	var o EventOrigin
	raw, err := f.getRaw(keyEventOrigin(id))
	if err != nil || raw == nil {
		return o, err
	}
	return o, decodeRow(keyEventOrigin(id), raw, &o)
}

// Memo returns a step's memoized value, or nil.
func (f *FSM) Memo(runID, stepID string) ([]byte, error) { return f.getRaw(keyStep(runID, stepID)) }

// RunsForEvent lists the ids of runs an event started.
func (f *FSM) RunsForEvent(eventID string) ([]string, error) {
	p := prefixEventRuns(eventID)
	var out []string
	err := f.scan(p, prefixEnd(p), false, func(k, _ []byte) bool {
		out = append(out, string(k[len(p):]))
		return true
	})
	return out, err
}

// RecentRuns lists up to limit runs, newest first (run ids are ULIDs).
func (f *FSM) RecentRuns(limit int) ([]Run, error) { return f.RunsBefore("", limit) }

// RunsBefore lists up to limit runs whose ids sort before the given one
// (all runs when it is ""), newest first: the pages of a run listing.
func (f *FSM) RunsBefore(before string, limit int) ([]Run, error) {
	p := prefixRuns
	upper := prefixEnd(p)
	if before != "" {
		upper = keyRun(before)
	}
	var out []Run
	var derr error
	err := f.scan(p, upper, true, func(k, v []byte) bool {
		var r Run
		if derr = decodeRow(k, v, &r); derr != nil {
			return false
		}
		out = append(out, r)
		return len(out) < limit
	})
	return out, errors.Join(err, derr)
}

// History returns a run's audit trail in order.
func (f *FSM) History(runID string) ([]HistoryEntry, error) {
	p := prefixHistory(runID)
	var out []HistoryEntry
	var derr error
	err := f.scan(p, prefixEnd(p), false, func(k, v []byte) bool {
		var h HistoryEntry
		if derr = decodeRow(k, v, &h); derr != nil {
			return false
		}
		out = append(out, h)
		return true
	})
	if err == nil {
		err = derr
	}
	return out, err
}

// Call returns a queued call, or nil.
func (f *FSM) Call(runID, callID string) (*Call, error) {
	c := &Call{}
	ok, err := f.getRow(keyCall(runID, callID), c)
	if !ok {
		return nil, err
	}
	return c, err
}

// ExpiredClaims returns up to limit claimed calls whose lease ended at or
// before now (their claimant is presumed gone), and the next lease end after
// them (0 if none).
func (f *FSM) ExpiredClaims(now int64, limit int, skip SkipFunc) ([]Call, int64, error) {
	due, _, next, err := f.scanQueue(prefixLeaseQueue, nil, now, limit, skip)
	return due, next, err
}

// SkipFunc tells a queue read to leave out a due call (the reader has it
// in hand already). It gets the call's due time so it can remember where
// the call stays queued.
type SkipFunc func(runID, callID string, due int64) bool

func (f *FSM) scanQueue(prefix, from []byte, now int64, limit int, skip SkipFunc) (due []Call, stop []byte, stopDue int64, err error) {
	var keys [][2]string
	lower := from
	if lower == nil {
		lower = prefix
	}
	if limit <= 0 {
		return nil, nil, 0, nil
	}
	var kerr error
	err = f.scan(lower, prefixEnd(prefix), false, func(k, _ []byte) bool {
		at, run, call, ok := parseQueueKey(prefix, k)
		if !ok {
			kerr = errRow(k, errBadKey)
			return false
		}
		if at > now || len(keys) >= limit {
			stop, stopDue = append([]byte(nil), k...), at
			return false
		}
		if skip == nil || !skip(run, call, at) {
			keys = append(keys, [2]string{run, call})
		}
		return true
	})
	if err = errors.Join(err, kerr); err != nil {
		return nil, nil, 0, err
	}
	if due, err = f.callsAt(keys); err != nil {
		return nil, nil, 0, err
	}
	return due, stop, stopDue, nil
}

// callsAt reads the calls at keys (run, call ids), in that order, leaving
// out those no longer stored. Rows the row cache lacks are read with one
// iterator seeking in key order: a point read each would build and tear
// down a merged iterator over every memtable and level per call (in a
// storm of timers, most of the executor's reading).
func (f *FSM) callsAt(keys [][2]string) ([]Call, error) {
	out := make([]Call, len(keys))
	found := make([]bool, len(keys))
	var miss [][]byte
	var missAt []int
	for i, rc := range keys {
		k := keyCall(rc[0], rc[1])
		if raw, ok := f.rows.get(k); ok {
			if err := decodeRow(k, raw, &out[i]); err != nil {
				return nil, err
			}
			found[i] = true
			continue
		}
		miss, missAt = append(miss, k), append(missAt, i)
	}
	if len(miss) > 0 {
		if err := f.seekCalls(miss, func(j int, v []byte) error {
			found[missAt[j]] = true
			return decodeRow(miss[j], v, &out[missAt[j]])
		}); err != nil {
			return nil, err
		}
	}
	n := 0
	for i := range out {
		if found[i] {
			out[n] = out[i]
			n++
		}
	}
	return out[:n], nil
}

// seekCalls reads the calls at keys with one iterator and hands each one
// stored to fn with its index in keys.
func (f *FSM) seekCalls(keys [][]byte, fn func(j int, v []byte) error) error {
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: prefixAllCalls, UpperBound: prefixEnd(prefixAllCalls)})
	if err != nil {
		return err
	}
	defer it.Close()
	return seekKeys(it, keys, func(j int, found bool) error {
		if !found {
			return nil
		}
		v, err := wholeValue(it)
		if err != nil {
			return err
		}
		return fn(j, v)
	})
}

// ClaimedBy lists the calls whose current claim belongs to node. It reads
// every claimed call (lq/): it runs once per leadership term, so the claims
// carry no per-node index that every step would have to keep up.
func (f *FSM) ClaimedBy(node string) ([]Call, error) {
	return f.Claims(func(c *Call) bool { return c.Node == node })
}

// Claims lists the claimed calls for which keep is true, reading every
// claimed call (lq/), as ClaimedBy does.
func (f *FSM) Claims(keep func(*Call) bool) ([]Call, error) {
	var keys [][2]string
	var kerr error
	err := f.scan(prefixLeaseQueue, prefixEnd(prefixLeaseQueue), false, func(k, _ []byte) bool {
		_, run, call, ok := parseQueueKey(prefixLeaseQueue, k)
		if !ok {
			kerr = errRow(k, errBadKey)
			return false
		}
		keys = append(keys, [2]string{run, call})
		return true
	})
	if err = errors.Join(err, kerr); err != nil {
		return nil, err
	}
	calls, err := f.callsAt(keys)
	if err != nil {
		return nil, err
	}
	var out []Call
	for i := range calls {
		if calls[i].Claimed && keep(&calls[i]) {
			out = append(out, calls[i])
		}
	}
	return out, nil
}

// StateDigest hashes every key and value of the projection except the
// applied-index bookkeeping: two nodes (or two replays) that applied the same
// records have the same digest.
func (f *FSM) StateDigest() (string, error) {
	h := sha256.New()
	err := f.scanStored(nil, nil, false, func(it *pebble.Iterator) bool {
		k, v := it.Key(), it.Value()
		if string(k) == string(keyApplied) {
			return true
		}
		digestRow(h, k, v)
		return true
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// digestRow adds one stored row to a state digest (StateDigest, Summary):
// the bytes of fmt's "%d:%s%d:%s" with len(k), k, len(v), v, written
// without fmt, which cost most of a digest of a large state.
func digestRow(w io.Writer, k, v []byte) {
	var n [20]byte
	w.Write(append(strconv.AppendInt(n[:0], int64(len(k)), 10), ':'))
	w.Write(k)
	w.Write(append(strconv.AppendInt(n[:0], int64(len(v)), 10), ':'))
	w.Write(v)
}

// CronFunction is a function with cron triggers.
type CronFunction struct {
	FnID  string
	Crons []string
}

// CronFunctions lists the functions that have cron triggers.
func (f *FSM) CronFunctions() ([]CronFunction, error) {
	var out []CronFunction
	var derr error
	err := f.scan(prefixCronFns, prefixEnd(prefixCronFns), false, func(k, v []byte) bool {
		cf := CronFunction{FnID: string(k[len(prefixCronFns):])}
		if derr = decodeRow(k, v, &cf.Crons); derr != nil {
			return false
		}
		out = append(out, cf)
		return true
	})
	if err == nil {
		err = derr
	}
	return out, err
}

// LastCronFired returns the latest scheduled time (unix ms) already fired
// for a function, or 0.
func (f *FSM) LastCronFired(fnID string) (int64, error) {
	p := []byte("cr/" + fnID + sep)
	var last int64
	var kerr error
	err := f.scan(p, prefixEnd(p), true, func(k, _ []byte) bool {
		if len(k) != len(p)+8 {
			kerr = errRow(k, errBadKey)
			return false
		}
		last = int64(binary.BigEndian.Uint64(k[len(p):]))
		return false
	})
	return last, errors.Join(err, kerr)
}

// SignalWaiter returns the run waiting for a signal, or "".
func (f *FSM) SignalWaiter(signal string) (string, error) {
	ref, err := f.getRaw(keySignal(signal))
	if ref == nil || err != nil {
		return "", err
	}
	run, _, _ := strings.Cut(string(ref), sep)
	return run, nil
}

// Refusal returns the result Apply would give an app's answer when the
// projection makes it certain already, so that the answer need not be
// written to the log: its run is over, or its call was claimed again or
// answered since (generations only grow). A run or call the projection
// lacks counts only when complete says it holds every entry committed
// before the answer's claim; otherwise the claim may not be applied yet.
func (f *FSM) Refusal(cf *CallFinished, complete bool) (res Result, refused bool, err error) {
	run, err := f.Run(cf.RunID)
	if err != nil || run == nil {
		return Result{Code: NotFound, ID: cf.RunID, Msg: "no such run"}, err == nil && complete, err
	}
	if run.Done() {
		return Result{Code: Rejected, ID: cf.RunID, Msg: "run is " + run.Status}, true, nil
	}
	call, err := f.Call(cf.RunID, cf.Call)
	switch {
	case err != nil:
		return Result{}, false, err
	case call == nil:
		return Result{Code: Stale, ID: cf.RunID, Msg: "call no longer queued"}, complete, nil
	case call.Gen > cf.Gen:
		return Result{Code: Stale, ID: cf.RunID, Msg: "superseded claim"}, true, nil
	case call.Gen == cf.Gen && !call.Claimed:
		return Result{Code: Stale, ID: cf.RunID, Msg: "call not claimed"}, true, nil
	}
	return Result{}, false, nil
}

// Limits returns the run limits Apply enforces now: those of the last
// LimitsSet, or none (a log written before limits existed).
func (f *FSM) Limits() (Limits, error) {
	cached, gen := f.lims.get()
	if cached != nil {
		return *cached, nil
	}
	var l Limits // none before the first LimitsSet
	_, err := f.get(keyLimits, &l)
	if err == nil {
		f.lims.put(l, gen)
	}
	return l, err
}

// Node returns what the cluster recorded of a member, or nil.
func (f *FSM) Node(id string) (*NodeSeen, error) {
	n := &NodeSeen{}
	ok, err := f.get(keyNode(id), n)
	if !ok {
		return nil, err
	}
	return n, err
}
