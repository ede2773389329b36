package fsm

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble"
	"github.com/vmihailenco/msgpack/v5"
)

// Reruns and bulk replays. A rerun is a new run of an old run's function
// and events; the old run is never changed, only linked to it in both
// histories. A bulk replay is a list of reruns fixed when it is recorded,
// started a few at a time by the leader, each place taken once.

// Replay is a bulk replay as the projection keeps it (rp/).
type Replay struct {
	ID        string   `msgpack:"id" json:"replay_id"`
	FnID      string   `msgpack:"fn" json:"function_id"`
	From      int64    `msgpack:"from" json:"from"`
	To        int64    `msgpack:"to" json:"to"`
	Statuses  []string `msgpack:"sts" json:"statuses"`
	Actor     string   `msgpack:"by,omitempty" json:"actor,omitempty"`
	Status    string   `msgpack:"st" json:"status"`
	CreatedAt int64    `msgpack:"ca" json:"created_at"`
	EndedAt   int64    `msgpack:"ea,omitempty" json:"ended_at,omitempty"`
	Total     int      `msgpack:"n" json:"runs"`
	Next      int      `msgpack:"next" json:"started"` // the place of the next rerun to start
	// CancelledBy names who stopped it.
	CancelledBy string `msgpack:"cby,omitempty" json:"cancelled_by,omitempty"`
}

// ReplayRun is one place of a bulk replay (rpr/): the run to replay and,
// once started, its rerun (or why none started).
type ReplayRun struct {
	Old   string `msgpack:"old" json:"run_id"`
	New   string `msgpack:"new,omitempty" json:"rerun_id,omitempty"`
	Error string `msgpack:"err,omitempty" json:"error,omitempty"`
}

func (t *txn) applyRunRerun(r *RunRerun) Result {
	if r.Replay == "" {
		return t.rerun(r)
	}
	var st Replay
	if !t.get(keyReplay(r.Replay), &st) {
		return Result{Code: NotFound, ID: r.Replay, Msg: "no such replay"}
	}
	if st.Status != ReplayStatusRunning {
		return Result{Code: Rejected, ID: r.Replay, Msg: "replay is " + st.Status}
	}
	if r.Seq != st.Next {
		// A new leader re-proposing what its predecessor already did.
		return Result{Code: Stale, ID: r.Replay, Msg: fmt.Sprintf("replay place %d is taken (next is %d)", r.Seq, st.Next)}
	}
	var place ReplayRun
	t.get(keyReplayRun(r.Replay, r.Seq), &place)
	if place.Old != r.From {
		return Result{Code: Rejected, ID: r.Replay, Msg: fmt.Sprintf("replay place %d is run %s, not %s", r.Seq, place.Old, r.From)}
	}
	res := t.rerun(r)
	if res.Code == OK {
		place.New = res.ID
	} else {
		place.Error = res.Msg // the replay goes on without it
	}
	t.put(keyReplayRun(r.Replay, r.Seq), &place)
	st.Next++
	if st.Next >= st.Total {
		st.Status, st.EndedAt = ReplayStatusCompleted, r.At
		t.del(keyReplayActive(st.ID))
	}
	t.put(keyReplay(st.ID), &st)
	return res
}

// rerun starts the new run of a RunRerun. It goes through the function's
// pacing (concurrency, priority, throttle) but not its admission rules
// (idempotency, rate limit, debounce, batching, singleton skips): a rerun
// is asked for by name and must not be dropped as a duplicate.
func (t *txn) rerun(r *RunRerun) Result {
	old := t.run(r.From)
	if old == nil {
		return Result{Code: NotFound, ID: r.From, Msg: "no such run"}
	}
	fn := t.functionOrNil(old.FnID)
	if fn == nil {
		return Result{Code: Rejected, ID: r.From, Msg: fmt.Sprintf("function %s no longer exists", old.FnID)}
	}
	evs := make([]eventRef, 0, len(old.EventIDs))
	for _, id := range old.EventIDs {
		js := t.getRaw(keyEvent(id))
		if js == nil {
			return Result{Code: Rejected, ID: r.From, Msg: "event " + id + " of the run is not stored"}
		}
		var ev struct {
			Name string `json:"name"`
		}
		json.Unmarshal(js, &ev)
		evs = append(evs, eventRef{ID: id, Name: ev.Name, JSON: js})
	}
	if len(evs) == 0 {
		return Result{Code: Rejected, ID: r.From, Msg: "the run has no event to rerun it with"}
	}
	run := t.newRun(fn, r.RunID, r.At, evs, "", r.At, "")
	if run == nil {
		return Result{Code: Duplicate, ID: r.RunID, Msg: "run id already exists"}
	}
	run.RerunOf = old.ID
	// A durable endpoint's rerun re-enters the endpoint, as the engine
	// continues any endpoint run (nobody waits for its response).
	run.Endpoint = old.Endpoint
	// The steps before FromStep keep their values: the app finds them
	// memoized and resumes at FromStep. A step that never completed (it
	// failed, or never ran) keeps every memoized value.
	var kept []string
	if r.FromStep != "" {
		kept = old.Stack
		if k := slices.Index(old.Stack, r.FromStep); k >= 0 {
			kept = old.Stack[:k]
		}
	}
	for _, id := range kept {
		if !t.memoize(run, id, t.getRaw(keyStep(old.ID, id))) {
			break // over the run's limits: memoize failed the run
		}
	}
	from := "from the start"
	if r.FromStep != "" {
		from = fmt.Sprintf("from step %s (%d steps kept)", r.FromStep, len(kept))
	}
	why := ""
	if r.Replay != "" {
		why = " in replay " + r.Replay
	}
	t.history(run, HistoryEntry{At: r.At, Type: HistRunRerunOf, Detail: fmt.Sprintf("rerun of %s %s%s", old.ID, from, why)})
	t.history(old, HistoryEntry{At: r.At, Type: HistRunRerun, Detail: fmt.Sprintf("rerun as %s %s%s", run.ID, from, why)})
	return Result{Code: OK, ID: run.ID, Runs: []string{run.ID}}
}

func (t *txn) applyReplayStarted(r *ReplayStarted) Result {
	if t.has(keyReplay(r.ID)) {
		return Result{Code: Duplicate, ID: r.ID, Msg: "replay already started"}
	}
	st := Replay{ID: r.ID, FnID: r.FnID, From: r.From, To: r.To, Statuses: r.Statuses, Actor: r.By,
		Status: ReplayStatusRunning, CreatedAt: r.At, Total: len(r.Runs)}
	for i, id := range r.Runs {
		t.put(keyReplayRun(r.ID, i), &ReplayRun{Old: id})
	}
	if st.Total == 0 {
		st.Status, st.EndedAt = ReplayStatusCompleted, r.At
	} else {
		t.putRaw(keyReplayActive(r.ID), nil)
	}
	t.put(keyReplay(r.ID), &st)
	return Result{Code: OK, ID: r.ID}
}

func (t *txn) applyReplayCancelled(r *ReplayCancelled) Result {
	var st Replay
	if !t.get(keyReplay(r.ID), &st) {
		return Result{Code: NotFound, ID: r.ID, Msg: "no such replay"}
	}
	if st.Status != ReplayStatusRunning {
		return Result{Code: Rejected, ID: r.ID, Msg: "replay is already " + st.Status}
	}
	st.Status, st.EndedAt, st.CancelledBy = ReplayStatusCancelled, r.At, r.By
	t.del(keyReplayActive(r.ID))
	t.put(keyReplay(r.ID), &st)
	return Result{Code: OK, ID: r.ID}
}

// Replay returns a bulk replay, or nil.
func (f *FSM) Replay(id string) (*Replay, error) {
	var r Replay
	if ok, err := f.get(keyReplay(id), &r); !ok || err != nil {
		return nil, err
	}
	return &r, nil
}

// ReplayRuns lists the places of a bulk replay in order, from place from,
// at most limit of them (0: all).
func (f *FSM) ReplayRuns(id string, from, limit int) ([]ReplayRun, error) {
	var out []ReplayRun
	var derr error
	p := prefixReplayRuns(id)
	err := f.scan(keyReplayRun(id, from), prefixEnd(p), false, func(k, v []byte) bool {
		var r ReplayRun
		if derr = decodeRow(k, v, &r); derr != nil {
			return false
		}
		out = append(out, r)
		return limit <= 0 || len(out) < limit
	})
	if err == nil {
		err = derr
	}
	return out, err
}

// ActiveReplays lists the bulk replays still starting runs.
func (f *FSM) ActiveReplays() ([]Replay, error) {
	var ids []string
	err := f.scan(prefixReplaysActive, prefixEnd(prefixReplaysActive), false, func(k, _ []byte) bool {
		ids = append(ids, string(k[len(prefixReplaysActive):]))
		return true
	})
	var out []Replay
	for _, id := range ids {
		if err != nil {
			break
		}
		var r *Replay
		if r, err = f.Replay(id); r != nil {
			out = append(out, *r)
		}
	}
	return out, err
}

// RunQuery selects a function's runs by creation time and status.
type RunQuery struct {
	FnID     string
	From, To int64    // creation time, unix ms, both included
	Statuses []string // nil: any
	Limit    int      // stop after this many matches (0: no limit)
	// Newest lists newest first (a listing's page) rather than oldest
	// first (a replay's window).
	Newest bool
	// Before, when set with Newest, continues a listing after the run
	// created at BeforeAt with id Before (both excluded): the UI's pages.
	Before   string
	BeforeAt int64
	// MaxScan bounds the runs read (0: no bound): a status that few runs
	// have must not make one page read every run.
	MaxScan int
}

// FunctionRuns lists the runs of a function created in [From, To], oldest
// first (newest first with Newest), with one of the statuses. It reads the
// fr/ index, keys only, and loads runs until Limit match.
func (f *FSM) FunctionRuns(q RunQuery) ([]Run, error) {
	runs, _, err := f.FunctionRunsScan(q)
	return runs, err
}

// FunctionRunsScan is FunctionRuns that also says where it stopped: the
// last run it read when Limit or MaxScan stopped it before the end of the
// window, nil when it read the whole window. A listing continues after it.
func (f *FSM) FunctionRunsScan(q RunQuery) (runs []Run, stop *Run, err error) {
	p := prefixFnRuns(q.FnID)
	lower := binary.BigEndian.AppendUint64(slices.Clone(p), uint64(max(q.From, 0)))
	upper := binary.BigEndian.AppendUint64(slices.Clone(p), uint64(max(q.To, 0))+1)
	if q.Newest && q.Before != "" {
		if b := keyFnRun(q.FnID, q.BeforeAt, q.Before); bytes.Compare(b, upper) < 0 {
			upper = b
		}
	}
	if bytes.Compare(lower, upper) >= 0 {
		return nil, nil, nil
	}
	var ids []string
	cut := false // the key scan stopped at MaxScan, before the window's end
	err = f.scan(lower, upper, q.Newest, func(k, _ []byte) bool {
		if q.MaxScan > 0 && len(ids) >= q.MaxScan {
			cut = true
			return false
		}
		ids = append(ids, string(k[len(p)+8:]))
		return true
	})
	var last *Run
	for i, id := range ids {
		if err != nil {
			break
		}
		if q.Limit > 0 && len(runs) >= q.Limit {
			return runs, last, nil
		}
		var r *Run
		if r, err = f.Run(id); r != nil {
			last = r
			if q.Statuses == nil || slices.Contains(q.Statuses, r.Status) {
				runs = append(runs, *r)
			}
		}
		if cut && i == len(ids)-1 {
			stop = last
		}
	}
	return runs, stop, err
}

// ResolveStep finds the hashed id of a step of a run from what a user
// gives: the hashed id itself, the id as written in code (hashed as the SDK
// hashes it, protocol §4.2), or the step's display name. ok is false when
// no step of the run matches.
func (f *FSM) ResolveStep(runID, step string) (id string, ok bool, err error) {
	sum := sha1.Sum([]byte(step))
	candidates := []string{step, hex.EncodeToString(sum[:])}
	run, err := f.Run(runID)
	if err != nil || run == nil {
		return "", false, err
	}
	for _, c := range candidates {
		if slices.Contains(run.Stack, c) {
			return c, true, nil
		}
	}
	hist, err := f.History(runID)
	if err != nil {
		return "", false, err
	}
	for _, h := range hist {
		stepID, _, _ := strings.Cut(h.Detail, " ")
		if !strings.HasPrefix(h.Type, "step.") || stepID == "" {
			continue
		}
		if slices.Contains(candidates, stepID) || h.Name == step {
			return stepID, true, nil
		}
	}
	return "", false, nil
}

// keyRunsIndexed marks a projection whose runs are all in fr/: Apply adds
// every new run there, and indexRuns adds the runs of a projection written
// by a release before fr/ existed, once, so replay windows find them too.
// Every projection gets the mark when opened or restored, so replicas keep
// the same digest whichever way they came by their runs.
var keyRunsIndexed = []byte("m/runs-indexed")

func indexRuns(db *pebble.DB) error {
	return upgradeRows(db, keyRunsIndexed, prefixRuns, func(b *pebble.Batch, it *pebble.Iterator) error {
		v, err := wholeValue(it)
		if err != nil {
			return err
		}
		var r struct {
			ID        string `msgpack:"id"`
			FnID      string `msgpack:"fn"`
			CreatedAt int64  `msgpack:"ca"`
		}
		if err := msgpack.Unmarshal(v, &r); err != nil {
			return errRow(it.Key(), err)
		}
		return b.Set(keyFnRun(r.FnID, r.CreatedAt, r.ID), nil, nil)
	})
}
