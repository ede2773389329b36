package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/cairn-dev/cairn/executor"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/labstack/echo/v4"
)

// answerResult is the outcome of one forwarded answer.
type answerResult struct {
	Code fsm.Code `json:"code"`
	Msg  string   `json:"msg,omitempty"`
}

// postAnswers takes app answers that a node's executor got for calls it had
// claimed while it was leader, and commits them on the leader. A node
// deposed mid-call (paused, cut off, or leadership moved) would otherwise
// drop them and the call would be sent again after its lease. Late answers
// are safe: a claim's generation fences them, so an answer to a call that
// was re-sent meanwhile is refused as stale, never applied twice.
//
// An answer the projection already refuses (fsm.Refusal) is answered here
// and never written to the log; values over the step output limit are
// screened out first, as the executor does (fsm.ScreenAnswer).
//
// The body is an entry of CallFinished records (fsm.EncodeEntry, msgpack).
func (s *Server) postAnswers(c echo.Context) error {
	limits, err := s.fsm.Limits()
	if err != nil {
		return err
	}
	// An answer carries an app response of up to the executor's limit,
	// above the limit for client requests.
	body, err := readBodyUpTo(c, max(s.cfg.MaxRequestBytes, limits.AppResponseBytes()+1<<20))
	if err != nil {
		return err
	}
	recs, err := decodeAnswers(body)
	if err != nil {
		return err
	}
	out := make([]answerResult, len(recs))
	var propose []fsm.Record
	var proposed []int // where each proposed record's result goes in out
	for i, r := range recs {
		cf := r.(*fsm.CallFinished)
		if res, refused, err := s.fsm.Refusal(cf, s.node.CaughtUp()); err != nil {
			return err
		} else if refused {
			out[i] = answerResult{Code: res.Code, Msg: res.Msg}
			continue
		}
		fsm.ScreenAnswer(cf, limits)
		propose, proposed = append(propose, cf), append(proposed, i)
	}
	if len(propose) > 0 {
		results, err := s.propose(c, propose...)
		if err != nil {
			return err
		}
		for j, r := range results {
			out[proposed[j]] = answerResult{Code: r.Code, Msg: r.Msg}
		}
	}
	return c.JSON(http.StatusOK, out)
}

// decodeAnswers reads the body of postAnswers: an entry of CallFinished
// records only, leasing nothing to the sender (it runs no executor for
// this leader).
func decodeAnswers(body []byte) ([]fsm.Record, error) {
	recs, err := fsm.DecodeEntry(body)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "invalid_entry", "answers: %v", err)
	}
	if len(recs) == 0 {
		return nil, errf(http.StatusBadRequest, "invalid_entry", "answers: no records")
	}
	for i, r := range recs {
		cf, ok := r.(*fsm.CallFinished)
		if !ok {
			return nil, errf(http.StatusBadRequest, "invalid_entry", "answers: record %d is %T, only call answers are accepted", i, r)
		}
		cf.Lease = nil
	}
	return recs, nil
}

// ForwardAnswer commits an app answer through the current leader, this node
// or another (the executor's Forward, for calls that outlived this node's
// leadership).
func (s *Server) ForwardAnswer(ctx context.Context, rec *fsm.CallFinished) (fsm.Result, error) {
	if s.node.IsLeader() {
		res, err := s.node.Propose(ctx, rec)
		if err != nil {
			return fsm.Result{}, err
		}
		return res[0], nil
	}
	addr, err := s.leaderHTTP()
	if err != nil {
		return fsm.Result{}, err
	}
	body, err := fsm.EncodeEntry(rec)
	if err != nil {
		return fsm.Result{}, err
	}
	// The receiver must not pass it on: only the leader can commit it.
	resp, err := s.toPeer(ctx, addr, pathAnswers, "application/msgpack", body, http.Header{forwardedHeader: {s.node.ID()}})
	if err != nil {
		return fsm.Result{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fsm.Result{}, fmt.Errorf("leader %s answered %d: %s", addr, resp.StatusCode, bytes.TrimSpace(raw))
	}
	var out []answerResult
	if err := json.Unmarshal(raw, &out); err != nil || len(out) != 1 {
		return fsm.Result{}, fmt.Errorf("leader %s: unexpected answer %q", addr, raw)
	}
	return fsm.Result{Code: out[0].Code, Msg: out[0].Msg}, nil
}

// getCalls answers what this node's executor has in hand: its boot and the
// calls it is sending or holds claimed, and the leader this node follows.
// A new leader asks it of the nodes that hold claims (executor.Config.Probe)
// and takes over the calls of a process that is gone instead of waiting out
// their leases. It is answered by this node itself, never forwarded.
func (s *Server) getCalls(c echo.Context) error {
	h := s.exec.Held()
	_, h.Leader = s.node.Leader()
	return c.JSON(http.StatusOK, h)
}

// PeerHeld asks the node at addr what its executor has in hand
// (GET /v1/internal/calls).
func (s *Server) PeerHeld(ctx context.Context, addr string) (executor.Held, error) {
	var h executor.Held
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.peerScheme()+"://"+addr+pathCalls, nil)
	if err != nil {
		return h, err
	}
	resp, err := s.sendPeer(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return h, err
	}
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("node %s answered %d: %s", addr, resp.StatusCode, bytes.TrimSpace(raw[:min(len(raw), 200)]))
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return h, fmt.Errorf("node %s: %w", addr, err)
	}
	return h, nil
}
