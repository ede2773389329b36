package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/labstack/echo/v4"
)

// checkpointAsyncBody is what the SDK posts to /v1/checkpoint/{runId}/async
// (protocol §9.1): the steps it finished inside a call that is still
// running, and the ids it was given in the call (ctx.fn_id, ctx.qi_id).
// Steps carry the SDK's own bookkeeping (mode, rawArgs, promise, ...):
// only the op fields are read.
type checkpointAsyncBody struct {
	RunID string          `json:"run_id"`
	FnID  string          `json:"fn_id"`
	QiID  string          `json:"qi_id"`
	Steps json.RawMessage `json:"steps"` // read by fsm.ParseOps, as a 206 body
}

// checkpointAsync memoizes steps an SDK finished mid-call (async
// checkpointing): it answers 200 only once they are committed, so the next
// call of the run includes them. The call stays claimed; the SDK's answer
// to it ends it later.
//
//   - 409 when the dispatch is no longer the call's current claim (qi_id
//     names an older generation, the call was answered, the run is over):
//     the SDK then stops and answers that dispatch 400 StaleDispatchError,
//     which Apply records as stale, never as the run's failure.
//   - 400 for anything but finished step.run ops (async ops come as the
//     call's answer, as Inngest's server requires), a bad body, a qi_id or
//     fn_id that does not name this run's call and function, or a value
//     over the step output limit (the SDK then sends the step in its
//     answer, where the executor screens it).
//
// Refusals are decided from the projection and leave no record; Apply
// decides again for a checkpoint that races a new claim.
func (s *Server) checkpointAsync(c echo.Context) error {
	limits, err := s.fsm.Limits()
	if err != nil {
		return err
	}
	// A checkpoint carries step outputs of up to the step output limit
	// (with the SDK's bookkeeping), above the limit for client requests.
	raw, err := readBodyUpTo(c, max(s.cfg.MaxRequestBytes, limits.AppResponseBytes()+1<<20))
	if err != nil {
		return err
	}
	var body checkpointAsyncBody
	if err := json.Unmarshal(raw, &body); err != nil {
		return errf(http.StatusBadRequest, "invalid_json", "checkpoint: %v", err)
	}
	runID := c.Param("id")
	if body.RunID != "" && body.RunID != runID {
		return errf(http.StatusBadRequest, "invalid_checkpoint", "run_id %q is not the run of the path (%q)", body.RunID, runID)
	}
	qiRun, call, gen, ok := fsm.ParseQueueItemID(body.QiID)
	if !ok || qiRun != runID {
		return errf(http.StatusBadRequest, "invalid_checkpoint", "qi_id %q is not a queue item id this server sent for run %s", body.QiID, runID)
	}
	steps, err := fsm.ParseOps(body.Steps)
	if err != nil {
		return errf(http.StatusBadRequest, "invalid_checkpoint", "steps: %v", err)
	}
	rec := &fsm.StepsCheckpointed{At: time.Now().UnixMilli(), RunID: runID, Call: call, Gen: gen, Steps: steps}
	res, refused, err := s.fsm.CheckpointRefusal(rec, body.FnID)
	if err != nil {
		return err
	}
	if !refused {
		results, err := s.propose(c, rec)
		if err != nil {
			return err
		}
		res = results[0]
	}
	switch res.Code {
	case fsm.OK:
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, okJSON) // every step of a checkpointing run: no encoder
	case fsm.NotFound:
		return errf(http.StatusNotFound, "run_not_found", "%s", res.Msg)
	case fsm.Stale:
		return errf(http.StatusConflict, "stale_dispatch", "%s", res.Msg)
	}
	if run, _ := s.fsm.Run(runID); run != nil && run.Done() {
		return errf(http.StatusConflict, "stale_dispatch", "%s", res.Msg)
	}
	return errf(http.StatusBadRequest, "invalid_checkpoint", "%s", res.Msg)
}

// okJSON is the answer to a checkpoint taken.
var okJSON = []byte(`{"ok":true}`)
