package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"

	"github.com/cockroachdb/pebble"
	"github.com/oklog/ulid/v2"
)

// RecentRunsWhere lists runs newest first, up to q.Limit (0: no limit):
// of one function (q.FnID, read from its index of runs by creation time)
// or of all (read from r/ backwards: run ids are ULIDs of their creation),
// created in [q.From, q.To] (q.To 0: no upper bound), with one of
// q.Statuses (nil: any). It is what GET /v1/runs filters with; without a
// function a rare status costs a scan back to q.From.
func (f *FSM) RecentRunsWhere(q RunQuery) ([]Run, error) {
	to := q.To
	if to <= 0 {
		to = 1<<62 - 1
	}
	keep := func(r *Run) bool {
		return r.CreatedAt >= q.From && r.CreatedAt <= to && (q.Statuses == nil || slices.Contains(q.Statuses, r.Status))
	}
	full := func(out []Run) bool { return q.Limit > 0 && len(out) >= q.Limit }
	var out []Run
	if q.FnID != "" {
		p := prefixFnRuns(q.FnID)
		lower := binary.BigEndian.AppendUint64(slices.Clone(p), uint64(max(q.From, 0)))
		upper := binary.BigEndian.AppendUint64(slices.Clone(p), uint64(to)+1)
		// Ids first, runs after: a view must not read while it holds an
		// iterator (a nested read lock waits behind a Restore).
		var ids []string
		err := f.scan(lower, upper, true, func(k, _ []byte) bool {
			ids = append(ids, string(k[len(p)+8:]))
			return true
		})
		for _, id := range ids {
			if err != nil || full(out) {
				break
			}
			var r *Run
			if r, err = f.Run(id); r != nil && keep(r) {
				out = append(out, *r)
			}
		}
		return out, err
	}
	var derr error
	err := f.scan(prefixRuns, prefixEnd(prefixRuns), true, func(k, v []byte) bool {
		if id, err := ulid.ParseStrict(string(k[len(prefixRuns):])); err == nil && int64(id.Time()) < q.From {
			return false // older than the window: so is every run before it
		}
		var r Run
		if derr = decodeRow(k, v, &r); derr != nil {
			return false
		}
		if keep(&r) {
			out = append(out, r)
		}
		return !full(out)
	})
	return out, errors.Join(err, derr)
}

// RunsCalls is RunCalls for many runs, by run id, read with one iterator
// seeking from run to run in key order: a list of a thousand runs would
// otherwise build a thousand iterators over every memtable and level.
func (f *FSM) RunsCalls(runIDs []string) (map[string][]Call, error) {
	out := make(map[string][]Call, len(runIDs))
	if len(runIDs) == 0 {
		return out, nil
	}
	ids := slices.Clone(runIDs)
	slices.Sort(ids) // their prefixes sort alike: ids hold no '\x00'
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: prefixAllCalls, UpperBound: prefixEnd(prefixAllCalls)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for _, id := range slices.Compact(ids) {
		p := prefixCalls(id)
		for ok := it.SeekGE(p); ok && bytes.HasPrefix(it.Key(), p); ok = it.Next() {
			v, err := wholeValue(it)
			if err != nil {
				return nil, err
			}
			var c Call
			if err := decodeRow(it.Key(), v, &c); err != nil {
				return nil, err
			}
			out[id] = append(out[id], c)
		}
	}
	return out, it.Error()
}

// RunCalls lists a run's queued calls (its steps due or in flight, its
// sleeps, waits and invokes, its timeouts), by call id.
func (f *FSM) RunCalls(runID string) ([]Call, error) {
	calls, err := f.RunsCalls([]string{runID})
	return calls[runID], err
}
