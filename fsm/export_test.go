package fsm

import (
	"strconv"

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
