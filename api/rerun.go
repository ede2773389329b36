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
	"github.com/oklog/ulid/v2"
)

// MaxReplayRuns bounds the runs one bulk replay takes: their ids are listed
// in one record (ReplayStarted). A wider window is refused with a message
// to narrow it.
const MaxReplayRuns = 10_000

// replayableStatuses are the run statuses a bulk replay may select.
var replayableStatuses = []string{fsm.StatusFailed, fsm.StatusCancelled, fsm.StatusCompleted, fsm.StatusRunning, fsm.StatusSkipped}

// ReplayDefaultStatuses are the statuses a bulk replay selects when it
// names none (the UI's replay form checks them).
var ReplayDefaultStatuses = []string{fsm.StatusFailed, fsm.StatusCancelled}

// rerunRun: POST /v1/runs/:id/rerun {"from_step"?} starts a new run of the
// run's function with its events; with from_step, the steps before it keep
// their recorded values.
func (s *Server) rerunRun(c echo.Context) error {
	old, err := s.loadRun(c)
	if err != nil {
		return err
	}
	var in struct {
		FromStep string `json:"from_step"`
	}
	if raw, err := s.readBody(c); err != nil {
		return err
	} else if len(raw) > 0 && json.Unmarshal(raw, &in) != nil {
		return errf(http.StatusBadRequest, "invalid_json", `body must be {"from_step": "<step id>"} or empty`)
	}
	if fn, err := s.fsm.Function(old.FnID); err != nil {
		return err
	} else if fn == nil {
		return errf(http.StatusConflict, "function_not_found", "function %s of run %s is no longer registered", old.FnID, old.ID)
	}
	rec := &fsm.RunRerun{At: time.Now().UnixMilli(), RunID: ulid.Make().String(), From: old.ID, By: actor(c)}
	if in.FromStep != "" {
		id, ok, err := s.fsm.ResolveStep(old.ID, in.FromStep)
		if err != nil {
			return err
		}
		if !ok {
			return errf(http.StatusBadRequest, "step_not_found",
				"run %s has no step %q (give the id as written in code, its hashed id, or its name; cairn history %s lists them)", old.ID, in.FromStep, old.ID)
		}
		rec.FromStep = id
	}
	res, err := s.propose(c, rec)
	if err != nil {
		return err
	}
	if res[0].Code != fsm.OK {
		return errf(http.StatusConflict, "rerun_refused", "%s", res[0].Msg)
	}
	s.log.Info("run rerun", "run", old.ID, "as", res[0].ID, "from_step", rec.FromStep, "by", rec.By)
	return c.JSON(http.StatusCreated, map[string]any{"data": map[string]any{"run_id": res[0].ID, "rerun_of": old.ID, "from_step": rec.FromStep}})
}

// startReplay: POST /v1/replays {"function_id", "from", "to", "statuses"}
// lists the function's runs created in [from, to] with those statuses and
// records them as one bulk replay; the leader then reruns each once.
func (s *Server) startReplay(c echo.Context) error {
	raw, err := s.readBody(c)
	if err != nil {
		return err
	}
	var in struct {
		FunctionID string          `json:"function_id"`
		From       json.RawMessage `json:"from"`
		To         json.RawMessage `json:"to"`
		Statuses   []string        `json:"statuses"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return errf(http.StatusBadRequest, "invalid_json", `body must be {"function_id", "from", "to", "statuses"}: %v`, err)
	}
	fn, err := s.resolveFunction(in.FunctionID)
	if err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	from, err := jsonTime("from", in.From, -1)
	if err != nil {
		return err
	}
	to, err := jsonTime("to", in.To, now)
	if err != nil {
		return err
	}
	if from < 0 {
		return errf(http.StatusBadRequest, "invalid_time", `"from" is required (RFC 3339 or unix ms)`)
	}
	if from > to {
		return errf(http.StatusBadRequest, "invalid_time", `"from" is after "to"`)
	}
	statuses := in.Statuses
	if len(statuses) == 0 {
		statuses = ReplayDefaultStatuses
	}
	for _, st := range statuses {
		if !slices.Contains(replayableStatuses, st) {
			return errf(http.StatusBadRequest, "invalid_status", "status %q is not one of %s", st, strings.Join(replayableStatuses, ", "))
		}
	}
	runs, err := s.fsm.FunctionRuns(fsm.RunQuery{FnID: fn.ID, From: from, To: to, Statuses: statuses, Limit: MaxReplayRuns + 1})
	if err != nil {
		return err
	}
	if len(runs) > MaxReplayRuns {
		return errf(http.StatusBadRequest, "too_many_runs", "the window holds more than %d matching runs; replay it in narrower windows", MaxReplayRuns)
	}
	rec := &fsm.ReplayStarted{At: now, ID: ulid.Make().String(), FnID: fn.ID, From: from, To: to, Statuses: statuses, By: actor(c)}
	for _, r := range runs {
		rec.Runs = append(rec.Runs, r.ID)
	}
	res, err := s.propose(c, rec)
	if err != nil {
		return err
	}
	if res[0].Code != fsm.OK {
		return errf(http.StatusConflict, "replay_refused", "%s", res[0].Msg)
	}
	s.log.Info("replay started", "replay", rec.ID, "function", fn.ID, "runs", len(rec.Runs), "by", rec.By)
	return c.JSON(http.StatusCreated, map[string]any{"data": map[string]any{"replay_id": rec.ID, "runs": len(rec.Runs)}})
}

// replayView is a bulk replay with how far it got: places started, and
// the reruns by status.
type replayView struct {
	fsm.Replay
	Reruns  map[string]int  `json:"reruns"`
	Skipped int             `json:"skipped"` // places whose rerun could not start
	Places  []fsm.ReplayRun `json:"places,omitempty"`
}

// getReplay: GET /v1/replays/:id (?places=true lists each run and its rerun).
func (s *Server) getReplay(c echo.Context) error {
	rp, err := s.loadReplay(c)
	if err != nil {
		return err
	}
	places, err := s.fsm.ReplayRuns(rp.ID, 0, 0)
	if err != nil {
		return err
	}
	v := replayView{Replay: *rp, Reruns: map[string]int{}}
	for _, p := range places {
		switch {
		case p.New != "":
			r, err := s.fsm.Run(p.New)
			if err != nil {
				return err
			}
			if r != nil {
				v.Reruns[r.Status]++
			}
		case p.Error != "":
			v.Skipped++
		}
	}
	if c.QueryParam("places") == "true" {
		v.Places = places
	}
	return c.JSON(http.StatusOK, map[string]any{"data": v})
}

// cancelReplay: POST /v1/replays/:id/cancel (or DELETE /v1/replays/:id)
// stops a replay starting runs; reruns started already go on.
func (s *Server) cancelReplay(c echo.Context) error {
	rp, err := s.loadReplay(c)
	if err != nil {
		return err
	}
	if rp.Status != fsm.ReplayStatusRunning {
		return errf(http.StatusConflict, "replay_finished", "replay %s is already %s", rp.ID, rp.Status)
	}
	res, err := s.propose(c, &fsm.ReplayCancelled{At: time.Now().UnixMilli(), ID: rp.ID, By: actor(c)})
	if err != nil {
		return err
	}
	if res[0].Code != fsm.OK {
		return errf(http.StatusConflict, "replay_finished", "%s", res[0].Msg)
	}
	return s.getReplay(c)
}

func (s *Server) loadReplay(c echo.Context) (*fsm.Replay, error) {
	rp, err := s.fsm.Replay(c.Param("id"))
	if err != nil {
		return nil, err
	}
	if rp == nil {
		return nil, errf(http.StatusNotFound, "replay_not_found", "no replay %q", c.Param("id"))
	}
	return rp, nil
}

// resolveFunction finds a function by its id as /v1/apps lists it
// ("<app>-<fn>"), or by the id the app gave it when that names exactly one
// function.
func (s *Server) resolveFunction(id string) (*fsm.Function, error) {
	if id == "" {
		return nil, errf(http.StatusBadRequest, "bad_request", `"function_id" is required (as listed by GET /v1/functions)`)
	}
	fn, err := s.fsm.Function(id)
	if err != nil || fn != nil {
		return fn, err
	}
	apps, err := s.fsm.Apps()
	if err != nil {
		return nil, err
	}
	var found []string
	for _, a := range apps {
		if slices.Contains(a.Functions, a.ID+"-"+id) {
			found = append(found, a.ID+"-"+id)
		}
	}
	switch len(found) {
	case 0:
		return nil, errf(http.StatusNotFound, "function_not_found", "no function %q (GET /v1/functions lists them)", id)
	case 1:
		return s.fsm.Function(found[0])
	}
	return nil, errf(http.StatusBadRequest, "ambiguous_function", "%q names %s; give one of them", id, strings.Join(found, ", "))
}

// jsonTime reads a time given in JSON as an RFC 3339 string or unix
// milliseconds (a number or a string of digits); def when absent.
func jsonTime(name string, raw json.RawMessage, def int64) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return def, nil
	}
	var ms int64
	if json.Unmarshal(raw, &ms) == nil && ms >= 0 {
		return ms, nil
	}
	var str string
	if json.Unmarshal(raw, &str) != nil {
		return 0, errf(http.StatusBadRequest, "invalid_time", "%q=%s is neither RFC 3339 nor unix milliseconds", name, raw)
	}
	return parseTime(name, str)
}

// parseTime reads a time given as RFC 3339 or unix milliseconds.
func parseTime(name, v string) (int64, error) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0, errf(http.StatusBadRequest, "invalid_time", "%s=%q is neither RFC 3339 nor unix milliseconds", name, v)
	}
	return t.UnixMilli(), nil
}
