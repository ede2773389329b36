package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/sdk/internal/errs"
	"github.com/cairn-dev/cairn/sdk/internal/state"
	"github.com/cairn-dev/cairn/sdk/protocol"
)

// Async checkpointing (protocol note §9.1): when the server sends ctx.fn_id,
// a discovery call keeps running the function after each step, saving the
// step on the server first, and answers only at an async op, an error, the
// end, or after maxRuntime. One call then does the work of many.

// maxRuntime is how long one call keeps running steps before it hands the
// next one to a new call (as the TS SDK does).
const maxRuntime = 10 * time.Second

// errStaleDispatch is a checkpoint the server refused because this call
// was dispatched again elsewhere: nothing this call does counts any more.
var errStaleDispatch = errors.New("stale dispatch")

type asyncCheckpointer struct {
	c         *Client
	runID     string
	fnID      string
	qiID      string
	requestID string
	genID     int
	started   time.Time
}

// newAsyncCheckpointer returns the checkpointer of a call that may run
// several steps, or nil when the call must answer after one step.
func (c *Client) newAsyncCheckpointer(r *http.Request, body *protocol.CallRequest, target string) *asyncCheckpointer {
	x := body.Ctx
	if target != state.DiscoveryStep || x.DisableImmediateExecution || x.Attempt > 0 || x.FnID == "" {
		return nil
	}
	gen := x.GenerationID
	if h, err := strconv.Atoi(r.Header.Get("X-Inngest-Generation-Id")); err == nil && gen == 0 {
		gen = h
	}
	return &asyncCheckpointer{
		c: c, runID: x.RunID, fnID: x.FnID, qiID: x.QiID,
		requestID: r.Header.Get("X-Request-Id"), genID: gen, started: time.Now(),
	}
}

// Checkpoint saves steps on the server, trying five times; a 409 means the
// call is stale and is not retried.
func (a *asyncCheckpointer) Checkpoint(ctx context.Context, ops []state.Op) error {
	body, err := json.Marshal(map[string]any{
		"run_id": a.runID, "fn_id": a.fnID, "qi_id": a.qiID,
		"request_id": a.requestID, "generation_id": a.genID,
		"request_started_at": a.started.UnixMilli(),
		"steps":              ops, "ts": time.Now().UnixMilli(),
	})
	if err != nil {
		return err
	}
	target := a.c.apiURL("/v1/checkpoint/" + url.PathEscape(a.runID) + "/async")
	return a.c.retry(ctx, "checkpointing", func() (bool, error) {
		status, resp, err := a.c.do(ctx, http.MethodPost, target, body)
		switch {
		case err != nil:
			return true, err
		case status == http.StatusConflict:
			return false, errStaleDispatch
		case status/100 != 2:
			return true, apiError("checkpointing", status, resp)
		}
		return false, nil
	})
}

// retry calls try up to five times, 100 ms apart and growing, while it
// says the failure may pass.
func (c *Client) retry(ctx context.Context, what string, try func() (again bool, err error)) error {
	var err error
	for i := 0; i < 5; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(i) * 100 * time.Millisecond):
			}
		}
		again, e := try()
		if e == nil {
			return nil
		}
		if err = e; !again {
			return err
		}
	}
	c.log.Warn("sdk: giving up "+what, "err", err)
	return err
}

// staleDispatch answers a call whose checkpoint was refused as stale: the
// server ignores it, but it must not be retried.
func staleDispatch(runID string) answer {
	b := errs.Named("StaleDispatchError", fmt.Sprintf("Stale dispatch: checkpoint returned 409 (run %s)", runID))
	return answer{status: 400, headers: map[string]string{"X-Inngest-No-Retry": "true"}, body: b}
}

// runComplete is the op that ends a run whose answer is a 206.
type runComplete struct {
	ID   string          `json:"id"`
	Op   string          `json:"op"`
	Data json.RawMessage `json:"data"`
}
