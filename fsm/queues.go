package fsm

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"

	"github.com/cockroachdb/pebble"
	"github.com/vmihailenco/msgpack/v5"
)

// Reading the due queues (keys.go). The executor reads the timers from qt/
// and each function's app calls from that function's qf/ queue, each read
// resuming where the last one stopped, and Apply hints where calls were
// queued since (DueHints). A function with a long backlog costs a read of
// its own queue only when its share has room: it never slows down finding
// a timer or another function's call.

// DueHints says where calls were queued: the earliest due time among the
// timers (math.MaxInt64: none) and among each function's app calls. All
// says anything may be queued anywhere (a projection just opened or
// restored): every queue is to be read from its head.
type DueHints struct {
	All    bool
	Timers int64
	Calls  map[string]int64 // function id → earliest due time
}

// NoHints is DueHints with nothing queued.
func NoHints() DueHints { return DueHints{Timers: math.MaxInt64} }

// Lower notes a call queued at due: a timer, or an app call of function fn.
func (h *DueHints) Lower(timer bool, fn string, due int64) {
	if timer {
		h.Timers = min(h.Timers, due)
		return
	}
	if h.Calls == nil {
		h.Calls = map[string]int64{}
	}
	if old, ok := h.Calls[fn]; !ok || due < old {
		h.Calls[fn] = due
	}
}

// Merge adds o's hints to h.
func (h *DueHints) Merge(o DueHints) {
	h.All = h.All || o.All
	h.Timers = min(h.Timers, o.Timers)
	for fn, due := range o.Calls {
		h.Lower(false, fn, due)
	}
}

func (h *DueHints) empty() bool { return !h.All && h.Timers == math.MaxInt64 && len(h.Calls) == 0 }

// TakeDueHints returns the hints gathered since the last call (All after
// opening or a restore) and resets them. The executor uses them to read a
// queue only from where something changed, instead of from its head.
func (f *FSM) TakeDueHints() DueHints {
	f.hintMu.Lock()
	defer f.hintMu.Unlock()
	h := f.hints
	f.hints = NoHints()
	return h
}

func (f *FSM) addHints(h DueHints) {
	if h.empty() {
		return
	}
	f.hintMu.Lock()
	f.hints.Merge(h)
	f.hintMu.Unlock()
}

// TimerQueueKey is the position in the timer queue of the first timer due
// at t.
func TimerQueueKey(t int64) []byte { return queuePos(prefixTimerQueue, t) }

// CallQueueKey is the position in function fn's queue of its first app
// call due at t.
func CallQueueKey(fn string, t int64) []byte { return queuePos(prefixFnQueue(fn), t) }

func queuePos(prefix []byte, t int64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), uint64(max(t, 0)))
}

// TimersFrom returns up to limit timers due at or before now, reading the
// timer queue from a position (nil: its head), and where it stopped: the
// position and due time of the first timer it did not return because it is
// not due yet or the limit was reached (nil and 0 at the end).
//
// A queue's head is a graveyard of deleted entries (every claim moves its
// call), which an iterator must step over one by one; a reader that resumes
// where its last read stopped never walks them twice.
func (f *FSM) TimersFrom(from []byte, now int64, limit int, skip SkipFunc) (due []Call, stop []byte, stopDue int64, err error) {
	return f.scanQueue(prefixTimerQueue, from, now, limit, skip)
}

// CallsFrom is TimersFrom for the app calls of function fn.
func (f *FSM) CallsFrom(fn string, from []byte, now int64, limit int, skip SkipFunc) (due []Call, stop []byte, stopDue int64, err error) {
	return f.scanQueue(prefixFnQueue(fn), from, now, limit, skip)
}

// QueuedFunctions lists the functions that have app calls queued, due or
// not. It seeks from one function's queue to the next.
func (f *FSM) QueuedFunctions() ([]string, error) {
	var fns []string
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: prefixFnQueues, UpperBound: prefixEnd(prefixFnQueues)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for ok := it.First(); ok; {
		fn, _, found := strings.Cut(string(it.Key()[len(prefixFnQueues):]), sep)
		if !found {
			return nil, errRow(it.Key(), errBadKey)
		}
		fns = append(fns, fn)
		ok = it.SeekGE(prefixEnd(prefixFnQueue(fn)))
	}
	return fns, it.Error()
}

// keyQueuesSplit marks a projection whose queues are qt/ and qf/. A
// release before them kept every unclaimed call in one queue, q/<due>/...;
// splitQueues moves those entries once, when the projection is opened or
// restored, so that every replica ends with the same keys.
var (
	keyQueuesSplit = []byte("m/queues-split")
	prefixOldQueue = []byte("q/")
)

func splitQueues(db *pebble.DB) error {
	return upgradeRows(db, keyQueuesSplit, prefixOldQueue, func(b *pebble.Batch, it *pebble.Iterator) error {
		if err := b.Delete(it.Key(), nil); err != nil {
			return err
		}
		due, run, call, ok := parseQueueKey(prefixOldQueue, it.Key())
		if !ok {
			return nil // unreadable: dropped, as no reader could use it
		}
		var c struct {
			Type string `msgpack:"t"`
		}
		if found, err := readWhole(db, keyCall(run, call), &c); err != nil || !found {
			return err // none found: no call behind it, a reader would skip it anyway
		}
		var r struct {
			FnID string `msgpack:"fn"`
		}
		if _, err := readWhole(db, keyRun(run), &r); err != nil {
			return err
		}
		cl := Call{RunID: run, ID: call, Type: c.Type, Due: due}
		return b.Set(keyCallQueue(&cl, r.FnID), nil, nil)
	})
}

// readWhole decodes the value at k, joining its parts if it has them.
func readWhole(db *pebble.DB, k []byte, v any) (bool, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: k, UpperBound: append(bytes.Clone(k), 0)})
	if err != nil {
		return false, err
	}
	defer it.Close()
	if !it.First() {
		return false, it.Error()
	}
	raw, err := wholeValue(it)
	if err != nil {
		return false, err
	}
	if err := msgpack.Unmarshal(raw, v); err != nil {
		return false, errRow(k, err)
	}
	return true, nil
}
