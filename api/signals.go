package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/labstack/echo/v4"
)

// postSignal resumes the run waiting in step.waitForSignal for this signal:
// 200 {"data": {"run_id"}} or 404 when no run waits (the SDK relies on both).
func (s *Server) postSignal(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	var in struct {
		Signal string          `json:"signal"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return errf(http.StatusBadRequest, "invalid_json", "signal body: %v", err)
	}
	if strings.TrimSpace(in.Signal) == "" {
		return errf(http.StatusBadRequest, "invalid_signal", "\"signal\" is required")
	}
	// The data becomes the waiting step's value: it is a step output.
	if limits, err := s.fsm.Limits(); err != nil {
		return err
	} else if n := int64(len(in.Data)); limits.StepOutputBytes > 0 && n > limits.StepOutputBytes {
		return errf(http.StatusRequestEntityTooLarge, "payload_too_large",
			"signal data is %d bytes; the limit (a step's output) is %s", n, fsm.SizeText(limits.StepOutputBytes))
	}
	// Answer "nobody waits" from the projection, so a 404 writes nothing.
	// A wait that ends between this read and the proposal still gets a 404.
	if waiter, err := s.fsm.SignalWaiter(in.Signal); err != nil {
		return err
	} else if waiter == "" {
		return errf(http.StatusNotFound, "signal_not_found", "no run is waiting for signal %q", in.Signal)
	}
	res, err := s.propose(c, &fsm.SignalReceived{At: time.Now().UnixMilli(), Signal: in.Signal, Data: in.Data,
		Lease: s.exec.LeaseNext(), By: actor(c)})
	if err != nil {
		return err
	}
	if res[0].Code != fsm.OK {
		return errf(http.StatusNotFound, "signal_not_found", "%s", res[0].Msg)
	}
	s.exec.Adopt(res[0].Claimed)
	return c.JSON(http.StatusOK, map[string]any{"data": map[string]string{"run_id": res[0].ID}})
}

// cancelFunctionRuns cancels, in one record, the running runs of a function
// created in a time range: {"from": RFC 3339, "to": RFC 3339, "reason"}.
// Without "from" it starts at the beginning; without "to" it ends now.
func (s *Server) cancelFunctionRuns(c echo.Context) error {
	// The function as listed ("<app>-<fn>") or by the id its app gave it,
	// when that names one function.
	fn, err := s.resolveFunction(c.Param("id"))
	if err != nil {
		return err
	}
	fnID := fn.ID
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	var in struct {
		From   string `json:"from"`
		To     string `json:"to"`
		Reason string `json:"reason"`
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			return errf(http.StatusBadRequest, "invalid_json", "body: %v", err)
		}
	}
	now := time.Now()
	rec := &fsm.BulkCancel{At: now.UnixMilli(), FnID: fnID, To: now.UnixMilli(), Reason: in.Reason, By: actor(c)}
	for _, x := range []struct {
		name, val string
		dst       *int64
	}{{"from", in.From, &rec.From}, {"to", in.To, &rec.To}} {
		if x.val == "" {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, x.val)
		if err != nil {
			return errf(http.StatusBadRequest, "invalid_time", "%q: %v", x.name, err)
		}
		*x.dst = ts.UnixMilli()
	}
	if rec.From > rec.To {
		return errf(http.StatusBadRequest, "invalid_time", "\"from\" is after \"to\"")
	}
	// A cancel that matches nothing is answered from the projection and
	// writes nothing (as a signal nobody waits for). A run started between
	// this read and now is left alone, as if it had come after the request.
	match, err := s.fsm.BulkCancelMatches(rec)
	if err != nil {
		return err
	}
	var cancelled []string
	if match {
		res, err := s.propose(c, rec)
		if err != nil {
			return err
		}
		cancelled = res[0].Runs
		s.log.Info("runs cancelled in bulk", "function", fnID, "runs", len(cancelled), "by", rec.By)
	}
	if cancelled == nil {
		cancelled = []string{}
	}
	return c.JSON(http.StatusOK, map[string]any{"data": map[string]any{"cancelled": cancelled}})
}
