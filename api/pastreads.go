package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/pointintime"
	"github.com/labstack/echo/v4"
)

// Reads at a past log index: ?at_index=N, or ?at=<RFC 3339 time> (the
// last index whose records' times are at or before it). The state is
// rebuilt from the log (package pointintime), so it is the same on every
// replica; a follower forwards these reads to the leader like any other
// unless ?consistency=local.
const (
	paramAtIndex = "at_index"
	paramAt      = "at"
)

// pastState returns the state a request asks for, or nil when it asks
// for the live one. The caller releases it.
func (s *Server) pastState(c echo.Context) (*pointintime.State, error) {
	rawIndex, rawTime := c.QueryParam(paramAtIndex), c.QueryParam(paramAt)
	if rawIndex == "" && rawTime == "" {
		return nil, nil
	}
	if rawIndex != "" && rawTime != "" {
		return nil, errf(http.StatusBadRequest, "bad_request", "give ?at_index= or ?at=, not both")
	}
	if s.cfg.PastStates == nil {
		return nil, errf(http.StatusNotImplemented, "not_implemented", "this node does not serve past states")
	}
	ctx := c.Request().Context()
	var index uint64
	if rawIndex != "" {
		n, err := strconv.ParseUint(rawIndex, 10, 64)
		if err != nil {
			return nil, errf(http.StatusBadRequest, "invalid_at_index", "at_index must be a log index (an integer >= 0), not %q", rawIndex)
		}
		index = n
	} else {
		t, err := time.Parse(time.RFC3339Nano, rawTime)
		if err != nil {
			return nil, errf(http.StatusBadRequest, "invalid_at", "at must be an RFC 3339 time such as 2026-01-02T15:04:05Z, not %q", rawTime)
		}
		if index, err = s.cfg.PastStates.IndexAt(ctx, t); err != nil {
			return nil, pastError(err)
		}
	}
	st, err := s.cfg.PastStates.At(ctx, index)
	if err != nil {
		return nil, pastError(err)
	}
	return st, nil
}

// pastError gives the refusals of package pointintime their statuses.
func pastError(err error) error {
	switch {
	case errors.Is(err, pointintime.ErrAhead):
		return errf(http.StatusBadRequest, "index_not_applied", "%v", err)
	case errors.Is(err, pointintime.ErrCompacted):
		return errf(http.StatusGone, "history_compacted", "%v", err)
	case errors.Is(err, pointintime.ErrClosed):
		return errf(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
	}
	return err
}

// StateView is GET /v1/state's answer (tests decode it too).
type StateView struct {
	Index uint64 `json:"index"`
	// AppliedIndex is the projection's own index: the last entry at or
	// below Index that changed it (Raft's no-ops change nothing). Past
	// states only.
	AppliedIndex uint64                  `json:"applied_index,omitempty"`
	Digest       string                  `json:"digest"`
	Runs         map[string]int          `json:"runs"`
	Build        *pointintime.BuildStats `json:"build,omitempty"`
}

func viewState(index uint64, sum fsm.Summary) StateView {
	runs := map[string]int{}
	for _, st := range fsm.RunStatuses {
		runs[st] = 0
	}
	for st, n := range sum.Runs {
		runs[st] = n
	}
	return StateView{Index: index, Digest: sum.Digest, Runs: runs}
}

// getState shows the whole state's index, digest and runs by status: live,
// or at a past index. The digest is fsm's StateDigest, so a past state at
// the live applied index has the live digest, on every replica. Each read
// scans the whole state (as /v1/status?digest=true does).
func (s *Server) getState(c echo.Context) error {
	past, err := s.pastState(c)
	if err != nil {
		return err
	}
	if past == nil {
		sum, err := s.fsm.Summary()
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"data": viewState(sum.Index, sum)})
	}
	defer past.Release()
	sum, err := past.Summary()
	if err != nil {
		return err
	}
	v := viewState(past.Index, sum)
	v.AppliedIndex, v.Build = sum.Index, &past.Build
	return c.JSON(http.StatusOK, map[string]any{"data": v})
}

// getPastRun answers GET /v1/runs/:id at a past index as getRun does now.
func (s *Server) getPastRun(c echo.Context, past *pointintime.State) error {
	r, err := s.loadPastRun(c, past)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": viewRun(r, nil), paramAtIndex: past.Index})
}

func (s *Server) loadPastRun(c echo.Context, past *pointintime.State) (*fsm.Run, error) {
	id := c.Param("id")
	r, err := past.Run(id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errf(http.StatusNotFound, "run_not_found", "no run with id %q at log index %d", id, past.Index)
	}
	return r, nil
}
