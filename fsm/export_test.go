package fsm

import (
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble"
)

// QueueEntries lists the raw entries of every queue (qt/, qf/ and lq/) that
// belong to runID, as "<queue>due/call", so tests can see entries that no
// call backs any more (Due hides those).
func QueueEntries(f *FSM, runID string) []string {
	var out []string
	fns, _ := f.QueuedFunctions()
	for _, p := range append([][]byte{prefixTimerQueue, prefixLeaseQueue}, prefixesOf(fns)...) {
		f.scanStored(p, prefixEnd(p), false, func(it *pebble.Iterator) bool {
			if due, run, call, ok := parseQueueKey(p, it.Key()); ok && run == runID {
				out = append(out, string(p)+itoa(due)+"/"+call)
			}
			return true
		})
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Due returns up to limit calls due at or before now from every queue,
// claims whose lease ran out included (see ExpiredClaims), earliest first,
// and the due time of the next call after them (0 if none): the tests'
// view of all the queues (the executor reads them one by one).
func (f *FSM) Due(now int64, limit int, skip SkipFunc) (due []Call, next int64, err error) {
	fns, err := f.QueuedFunctions()
	if err != nil {
		return nil, 0, err
	}
	later := func(d int64) {
		if d != 0 && (next == 0 || d < next) {
			next = d
		}
	}
	read := func(prefix []byte) error {
		got, _, stopDue, err := f.scanQueue(prefix, nil, now, limit, skip)
		due = append(due, got...)
		later(stopDue)
		return err
	}
	for _, p := range append([][]byte{prefixTimerQueue, prefixLeaseQueue}, prefixesOf(fns)...) {
		if err := read(p); err != nil {
			return nil, 0, err
		}
	}
	slices.SortFunc(due, func(a, b Call) int {
		if a.Due != b.Due {
			return cmpInt(a.Due, b.Due)
		}
		return strings.Compare(a.RunID+sep+a.ID, b.RunID+sep+b.ID)
	})
	if len(due) > limit {
		later(due[limit].Due)
		due = due[:limit]
	}
	return due, next, nil
}

func prefixesOf(fns []string) [][]byte {
	out := make([][]byte, len(fns))
	for i, fn := range fns {
		out[i] = prefixFnQueue(fn)
	}
	return out
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ResetRowCache empties f's row cache.
func ResetRowCache(f *FSM) { f.rows.reset() }

// DisableRowCache makes f's Apply read every row from Pebble: no row
// cache, no prefetch.
func DisableRowCache(f *FSM) { f.rowCacheOff = true }

// StoredCalls reads every call from the store, not from the row cache.
func StoredCalls(f *FSM) ([]Call, error) {
	var out []Call
	err := f.scanStored(prefixAllCalls, prefixEnd(prefixAllCalls), false, func(it *pebble.Iterator) bool {
		var c Call
		v, err := wholeValue(it)
		if err == nil {
			err = decodeRow(it.Key(), v, &c)
		}
		if err != nil {
			panic(err)
		}
		out = append(out, c)
		return true
	})
	return out, err
}

// SetRowCacheGen sets the rows per generation of the row cache until the
// test ends.
func SetRowCacheGen(t interface{ Cleanup(func()) }, n int) {
	old := rowCacheGen
	rowCacheGen = n
	t.Cleanup(func() { rowCacheGen = old })
}

// CallsAt is callsAt, the queue readers' batched read of calls.
func CallsAt(f *FSM, keys [][2]string) ([]Call, error) { return f.callsAt(keys) }
