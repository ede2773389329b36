package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/labstack/echo/v4"
)

// RunView is a run as the API shows it (clients decode it too).
type RunView struct {
	ID         string          `json:"id"`
	FunctionID string          `json:"function_id"`
	AppID      string          `json:"app_id"`
	Status     string          `json:"status"`
	EventIDs   []string        `json:"event_ids"`
	CreatedAt  int64           `json:"created_at"`
	StartedAt  int64           `json:"started_at,omitempty"`
	EndedAt    int64           `json:"ended_at,omitempty"`
	Output     json.RawMessage `json:"output,omitempty"`
	Error      json.RawMessage `json:"error,omitempty"`
	Steps      []string        `json:"steps"`
	Calls      int             `json:"calls"`
	// Waiting says why a running run is held back (throttle, debounce,
	// batch, concurrency) or what it waits for (a sleep, an event, a
	// signal, an invoked function), its time as RFC 3339; WaitingReason is
	// the same without the time, WaitingUntil the time (unix ms), for
	// clients that render times their own way (see waiting).
	Waiting       string `json:"waiting,omitempty"`
	WaitingReason string `json:"waiting_reason,omitempty"`
	WaitingUntil  int64  `json:"waiting_until,omitempty"`
	WaitingStep   string `json:"waiting_step,omitempty"` // the sleeping or waiting step's id
	// StepNames maps the hashed ids of Steps to their names in the code
	// (from the history; GET /v1/runs/:id only).
	StepNames map[string]string `json:"step_names,omitempty"`
}

// viewRun shows a run; calls are its queued calls (nil: unknown, as in a
// past state), from which a run that waits says what for.
func viewRun(r *fsm.Run, calls []fsm.Call) RunView {
	v := RunView{ID: r.ID, FunctionID: r.FnID, AppID: r.AppID, Status: r.Status, EventIDs: r.EventIDs,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, EndedAt: r.EndedAt, Steps: r.Stack, Calls: r.Calls}
	v.Waiting, v.WaitingReason, v.WaitingUntil, v.WaitingStep = waiting(r, calls)
	if len(r.Output) > 0 {
		v.Output = r.Output
	}
	if len(r.Error) > 0 {
		v.Error = r.Error
	}
	if v.Steps == nil {
		v.Steps = []string{}
	}
	return v
}

func (s *Server) loadRun(c echo.Context) (*fsm.Run, error) {
	id := c.Param("id")
	r, err := s.fsm.Run(id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errf(http.StatusNotFound, "run_not_found", "no run with id %q", id)
	}
	return r, nil
}

func (s *Server) getRun(c echo.Context) error {
	if past, err := s.pastState(c); err != nil {
		return err
	} else if past != nil {
		defer past.Release()
		return s.getPastRun(c, past)
	}
	r, err := s.loadRun(c)
	if err != nil {
		return err
	}
	v, err := s.viewLiveRun(r)
	if err != nil {
		return err
	}
	hist, err := s.fsm.History(r.ID)
	if err != nil {
		return err
	}
	v.StepNames = stepNames(hist)
	return c.JSON(http.StatusOK, map[string]any{"data": v})
}

// viewLiveRun shows a run of the current state, with what it waits for.
func (s *Server) viewLiveRun(r *fsm.Run) (RunView, error) {
	out, err := s.viewLiveRuns([]fsm.Run{*r})
	if err != nil {
		return RunView{}, err
	}
	return out[0], nil
}

// viewLiveRuns is viewLiveRun for a list, with one read of all their calls.
func (s *Server) viewLiveRuns(runs []fsm.Run) ([]RunView, error) {
	var ids []string
	for i := range runs {
		if showsCalls(&runs[i]) {
			ids = append(ids, runs[i].ID)
		}
	}
	calls, err := s.fsm.RunsCalls(ids)
	if err != nil {
		return nil, err
	}
	out := make([]RunView, len(runs))
	for i := range runs {
		out[i] = viewRun(&runs[i], calls[runs[i].ID])
	}
	return out, nil
}

// showsCalls reports whether a run's view reads its calls: a run under way
// that is not parked (what a parked run waits for is in its Waiting).
func showsCalls(r *fsm.Run) bool {
	return !r.Done() && (r.Waiting == "" || r.Waiting == fsm.WaitingDebounce || r.Waiting == fsm.WaitingBatch)
}

// stepNames maps step ids to their names in the code, as the SDK's ops
// gave them (a step's history entries carry its displayName).
func stepNames(hist []fsm.HistoryEntry) map[string]string {
	names := map[string]string{}
	for i := range hist {
		if step := hist[i].Step(); step != "" && hist[i].Name != "" {
			names[step] = hist[i].Name
		}
	}
	if len(names) == 0 {
		return nil
	}
	return names
}

func (s *Server) listRuns(c echo.Context) error {
	limit := 50
	if l := c.QueryParam("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 || n > 1000 {
			return errf(http.StatusBadRequest, "invalid_limit", "limit must be between 1 and 1000")
		}
		limit = n
	}
	q := fsm.RunQuery{Limit: limit}
	if id := c.QueryParam("function_id"); id != "" {
		fn, err := s.resolveFunction(id)
		if err != nil {
			return err
		}
		q.FnID = fn.ID
	}
	if st := c.QueryParam("status"); st != "" {
		for _, one := range strings.Split(st, ",") {
			if !slices.Contains(fsm.RunStatuses, one) {
				return errf(http.StatusBadRequest, "invalid_status", "status %q is not one of %s", one, strings.Join(fsm.RunStatuses, ", "))
			}
			q.Statuses = append(q.Statuses, one)
		}
	}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"since", &q.From}, {"until", &q.To}} {
		if v := c.QueryParam(p.name); v != "" {
			ms, err := parseTime(p.name, v)
			if err != nil {
				return err
			}
			*p.dst = ms
		}
	}
	runs, err := s.fsm.RecentRunsWhere(q)
	if err != nil {
		return err
	}
	out, err := s.viewLiveRuns(runs)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}

func (s *Server) eventRuns(c echo.Context) error {
	ev, err := s.fsm.Event(c.Param("id"))
	if err != nil {
		return err
	}
	if ev == nil {
		return errf(http.StatusNotFound, "event_not_found", "no event with id %q", c.Param("id"))
	}
	ids, err := s.fsm.RunsForEvent(c.Param("id"))
	if err != nil {
		return err
	}
	var runs []fsm.Run
	for _, id := range ids {
		r, err := s.fsm.Run(id)
		if err != nil {
			return err
		}
		if r != nil {
			runs = append(runs, *r)
		}
	}
	out, err := s.viewLiveRuns(runs)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}

// HistoryView is one history entry as the API shows it: the stored entry
// (its data as "data", as before), and what a reader would otherwise
// derive from the whole history: the step it is about and that step's
// name, the data labelled by what it holds (fsm.HistData), the time as
// RFC 3339, and how long the step or run took. The stored "attempt"
// counts from 0 and is absent for a first attempt.
type HistoryView struct {
	fsm.HistoryEntry
	Time     string          `json:"time"`
	Data     json.RawMessage `json:"data,omitempty"`
	Step     string          `json:"step,omitempty"`      // the step's id (hashed by the SDK)
	StepName string          `json:"step_name,omitempty"` // its name in the code (displayName)
	Input    json.RawMessage `json:"input,omitempty"`     // run.scheduled: the run's first event
	Output   json.RawMessage `json:"output,omitempty"`
	Error    json.RawMessage `json:"error,omitempty"`
	// DurationMs: for the end of a step, from the claim of the call that
	// answered (or from the start of the sleep or wait) to the entry; for
	// the end of the run, from its first entry.
	DurationMs *int64 `json:"duration_ms,omitempty"`
}

// historyTime is how history times are shown: RFC 3339, UTC, milliseconds.
const historyTime = "2006-01-02T15:04:05.000Z07:00"

// ViewHistory labels a run's history entries (see HistoryView). event is
// the run's first event (nil if unknown), the input of run.scheduled.
func ViewHistory(hist []fsm.HistoryEntry, event []byte) []HistoryView {
	names := stepNames(hist)
	claimed := map[string]int64{} // call id -> time of its latest claim
	began := map[string]int64{}   // step id -> when its sleep, wait or invoke began
	out := make([]HistoryView, len(hist))
	for i, h := range hist {
		v := HistoryView{HistoryEntry: h, Time: time.UnixMilli(h.At).UTC().Format(historyTime), Step: h.Step()}
		v.StepName = names[v.Step]
		if len(h.Data) > 0 && json.Valid(h.Data) {
			v.Data = h.Data
			switch fsm.HistData(h.Type) {
			case fsm.HistDataOutput:
				v.Output = h.Data
			case fsm.HistDataError:
				v.Error = h.Data
			case fsm.HistDataInput:
				v.Input = h.Data
			}
		}
		since := int64(-1)
		switch {
		case h.Type == fsm.HistRunScheduled:
			if len(event) > 0 && json.Valid(event) {
				v.Input = event
			}
		case h.Type == fsm.HistCallClaimed:
			claimed[h.Call] = h.At
		case h.Type == fsm.HistStepSleeping || fsm.HistData(h.Type) == fsm.HistDataInput:
			began[v.Step] = h.At
		case fsm.HistRunEnd(h.Type):
			since = hist[0].At
		case fsm.HistData(h.Type) != "":
			if at, ok := began[v.Step]; ok && v.Step != "" {
				since = at
			} else if at, ok := claimed[h.Call]; ok && h.Call != "" {
				since = at
			}
		}
		if since >= 0 {
			d := h.At - since
			v.DurationMs = &d
		}
		out[i] = v
	}
	return out
}

func (s *Server) runHistory(c echo.Context) error {
	past, err := s.pastState(c)
	if err != nil {
		return err
	}
	var (
		hist []fsm.HistoryEntry
		r    *fsm.Run
	)
	if past != nil {
		defer past.Release()
		if r, err = s.loadPastRun(c, past); err != nil {
			return err
		}
		hist, err = past.History(r.ID)
	} else {
		if r, err = s.loadRun(c); err != nil {
			return err
		}
		hist, err = s.fsm.History(r.ID)
	}
	if err != nil {
		return err
	}
	var event []byte
	if len(r.EventIDs) > 0 {
		if event, err = s.fsm.Event(r.EventIDs[0]); err != nil {
			return err
		}
	}
	out := map[string]any{"data": ViewHistory(hist, event)}
	if past != nil {
		out[paramAtIndex] = past.Index
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) cancelRun(c echo.Context) error {
	r, err := s.loadRun(c)
	if err != nil {
		return err
	}
	if r.Done() {
		return errf(http.StatusConflict, "run_finished", "run %s is already %s", r.ID, r.Status)
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if raw, err := s.readBody(c); err != nil {
		return err
	} else if len(raw) > 0 && json.Unmarshal(raw, &body) != nil {
		return errf(http.StatusBadRequest, "invalid_json", "body must be {\"reason\": \"...\"} or empty")
	}
	res, err := s.propose(c, &fsm.CancelRequested{At: time.Now().UnixMilli(), RunID: r.ID, Reason: body.Reason, By: actor(c)})
	if err != nil {
		return err
	}
	if res[0].Code != fsm.OK {
		return errf(http.StatusConflict, "run_finished", "%s", res[0].Msg)
	}
	s.log.Info("run cancelled", "run", r.ID, "by", actor(c))
	r, err = s.fsm.Run(r.ID)
	if err != nil {
		return err
	}
	v, err := s.viewLiveRun(r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": v})
}

// appView is a synced app as the API shows it.
type appView struct {
	ID        string   `json:"id"`
	URL       string   `json:"url"`
	SDK       string   `json:"sdk"`
	Framework string   `json:"framework"`
	Functions []string `json:"functions"`
	SyncedAt  int64    `json:"synced_at"`
	SyncedBy  string   `json:"synced_by,omitempty"` // the actor of the sync that last changed it
}

func (s *Server) listApps(c echo.Context) error {
	apps, err := s.fsm.Apps()
	if err != nil {
		return err
	}
	out := make([]appView, len(apps))
	for i, a := range apps {
		out[i] = appView{ID: a.ID, URL: a.URL, SDK: a.SDK, Framework: a.Framework, Functions: a.Functions, SyncedAt: a.SyncedAt,
			SyncedBy: a.SyncedBy}
		if out[i].Functions == nil {
			out[i].Functions = []string{}
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out, "sync": s.syncer.Status()})
}

// removeApp deletes a registered app (?id=) and stops syncing its URL, or
// stops syncing a URL (?url=) that never registered.
func (s *Server) removeApp(c echo.Context) error {
	id, u := c.QueryParam("id"), c.QueryParam("url")
	switch {
	case id != "":
		app, err := s.fsm.App(id)
		if err != nil {
			return err
		}
		if app == nil {
			return errf(http.StatusNotFound, "not_found", "no app %q (cairn apps lists them)", id)
		}
		res, err := s.propose(c, &fsm.AppRemoved{At: time.Now().UnixMilli(), AppID: id, By: actor(c)})
		if err != nil {
			return err
		}
		if res[0].Code != fsm.OK {
			return errf(http.StatusNotFound, "not_found", "%s", res[0].Msg)
		}
		s.syncer.Remove(app.URL)
		s.log.Info("app removed", "app", id, "by", actor(c))
		return c.JSON(http.StatusOK, map[string]any{"data": map[string]any{"removed": id, "functions": app.Functions}})
	case u != "":
		if !s.syncer.Remove(u) {
			return errf(http.StatusNotFound, "not_found", "%q is not a synced URL", u)
		}
		return c.JSON(http.StatusOK, map[string]any{"data": map[string]any{"removed": u}})
	}
	return errf(http.StatusBadRequest, "bad_request", "give ?id=APP_ID or ?url=SYNC_URL")
}

// resync PUT-pings every known app (from -u and from registrations), or
// the one URL given as {"url": "..."}.
func (s *Server) resync(c echo.Context) error {
	var body struct {
		URL string `json:"url"`
	}
	raw, err := s.readBody(c)
	if err != nil {
		return err
	}
	if len(raw) > 0 && json.Unmarshal(raw, &body) != nil {
		return errf(http.StatusBadRequest, "invalid_json", "body must be {\"url\": \"...\"} or empty")
	}
	var extra []string
	if body.URL != "" {
		u, err := cleanURL(body.URL)
		if err != nil {
			return errf(http.StatusBadRequest, "invalid_url", "%v", err)
		}
		if err := s.cfg.AppHosts.CheckURL(u); err != nil {
			return errf(http.StatusBadRequest, "invalid_url", "%v", err)
		}
		s.syncer.Add(u)
		extra = append(extra, u)
	} else {
		apps, err := s.fsm.Apps()
		if err != nil {
			return err
		}
		for _, a := range apps {
			extra = append(extra, a.URL)
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"data": s.syncer.SyncAll(c.Request().Context(), extra...)})
}
