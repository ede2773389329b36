package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ---------------------------------------------------------------------------
// Load generator. Every logical event has a unique user id (its idempotency
// key); each attempt goes to a random node; 503s and transport errors are
// retried with the same id until the server answers 200 or the op gives up.
// Every op is written to a JSONL history (Jepsen style: outcome ok / fail /
// unknown, with every attempt).

type attemptRec struct {
	Node   string `json:"node"`
	At     int64  `json:"at"` // unix ms, when sent
	Ms     int64  `json:"ms"`
	Status int    `json:"status,omitempty"`
	Code   string `json:"code,omitempty"`
	Err    string `json:"err,omitempty"`
	// Ambiguous: the request may have been applied (outcome_unknown,
	// timeout, broken connection after sending).
	Ambiguous bool `json:"ambiguous,omitempty"`
}

type opRec struct {
	Seq      int          `json:"seq"`
	UID      string       `json:"uid"`
	Phase    string       `json:"phase"`
	Invoke   int64        `json:"invoke"` // unix ms
	Done     int64        `json:"done"`
	Outcome  string       `json:"outcome"` // ok, fail, unknown
	EventID  string       `json:"event_id,omitempty"`
	LatUs    int64        `json:"lat_us,omitempty"` // invoke -> ok, microseconds
	Attempts []attemptRec `json:"attempts"`
}

type history struct {
	mu  sync.Mutex
	f   *os.File
	w   *bufio.Writer
	ops []*opRec
}

func openHistory(path string) (*history, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &history{f: f, w: bufio.NewWriter(f)}, nil
}

func (h *history) add(op *opRec) {
	b, _ := json.Marshal(op)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
	h.w.Write(b)
	h.w.WriteByte('\n')
}

func (h *history) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.w.Flush()
	h.f.Close()
}

func (h *history) all(phase string) []*opRec {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*opRec
	for _, o := range h.ops {
		if phase == "" || o.Phase == phase {
			out = append(out, o)
		}
	}
	return out
}

type loadGen struct {
	runID   string // prefix of user ids, unique per harness run
	hist    *history
	giveUp  time.Duration
	timeout time.Duration // per attempt
	mu      sync.Mutex
	seq     int
	rng     *rand.Rand
}

func (l *loadGen) next() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	return l.seq
}

func (l *loadGen) pick(urls []string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return urls[l.rng.IntN(len(urls))]
}

// apiErr is Cairn's error body.
type apiErr struct {
	Code string `json:"code"`
	Msg  string `json:"error"`
}

// classify turns a transport error into (ambiguous, text).
func classifyErr(err error) (bool, string) {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return false, "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EINVAL) && strings.Contains(err.Error(), "dial"):
		return false, "unreachable"
	case errors.As(err, &ne) && ne.Timeout() && strings.Contains(err.Error(), "dial"):
		return false, "dial timeout"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return true, "timeout"
	}
	s := err.Error()
	if strings.Contains(s, "dial tcp") {
		return false, s
	}
	return true, s
}

// send runs one logical event to completion (or give-up).
func (l *loadGen) send(ctx context.Context, phase string, urls func() []string) *opRec {
	seq := l.next()
	uid := fmt.Sprintf("%s-%s-%d", l.runID, phase, seq)
	start := time.Now()
	op := &opRec{Seq: seq, UID: uid, Phase: phase, Invoke: start.UnixMilli()}
	body := map[string]any{"name": eventName, "id": uid,
		"data": map[string]any{"uid": uid, "phase": phase, "sent_ms": start.UnixMilli()}}
	ambiguous := false
	backoff := 100 * time.Millisecond
	for {
		u := l.pick(urls())
		t0 := time.Now()
		code, raw, err := postJSON(ctx, u+"/e/key", l.timeout, body)
		a := attemptRec{Node: u, At: t0.UnixMilli(), Ms: time.Since(t0).Milliseconds(), Status: code}
		switch {
		case err != nil:
			a.Ambiguous, a.Err = classifyErr(err)
		case code == 200:
			var out struct {
				IDs []string `json:"ids"`
			}
			if json.Unmarshal(raw, &out) == nil && len(out.IDs) == 1 {
				op.Attempts = append(op.Attempts, a)
				op.Outcome, op.EventID, op.Done = "ok", out.IDs[0], time.Now().UnixMilli()
				op.LatUs = time.Since(start).Microseconds()
				l.hist.add(op)
				return op
			}
			a.Ambiguous, a.Err = true, "200 with a bad body: "+string(raw)
		default:
			var e apiErr
			_ = json.Unmarshal(raw, &e)
			a.Code, a.Err = e.Code, e.Msg
			switch {
			case code == 503 && (e.Code == "not_leader" || e.Code == "no_leader" || e.Code == "shutting_down"):
				// nothing was written
			case code >= 400 && code < 500:
				// the request is wrong: retrying cannot help
				op.Attempts = append(op.Attempts, a)
				op.Outcome, op.Done = "fail", time.Now().UnixMilli()
				l.hist.add(op)
				return op
			default:
				a.Ambiguous = true // outcome_unknown, other 5xx
			}
		}
		ambiguous = ambiguous || a.Ambiguous
		op.Attempts = append(op.Attempts, a)
		if time.Since(start) > l.giveUp || ctx.Err() != nil {
			op.Outcome, op.Done = "fail", time.Now().UnixMilli()
			if ambiguous {
				op.Outcome = "unknown"
			}
			l.hist.add(op)
			return op
		}
		j := time.Duration(rand.Int64N(int64(backoff/2) + 1))
		_ = sleepCtx(ctx, backoff/2+j)
		backoff = min(backoff*3/2, time.Second)
	}
}

// steady sends rate events/s until stop ends; it returns once every op has
// finished (each op is bounded by giveUp, or ends when abort ends).
func (l *loadGen) steady(stop, abort context.Context, phase string, rate float64, urls func() []string) {
	ctx := stop
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	sem := make(chan struct{}, 4096)
	for ctx.Err() == nil {
		if d := time.Until(next); d > 0 {
			if sleepCtx(ctx, d) != nil {
				break
			}
		}
		next = next.Add(interval)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			l.send(abort, phase, urls)
		}()
	}
	wg.Wait()
}

// burst sends n events with `senders` concurrent closed-loop clients.
func (l *loadGen) burst(ctx context.Context, phase string, n, senders int, urls func() []string) {
	var wg sync.WaitGroup
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if ctx.Err() != nil {
					return
				}
				l.send(ctx, phase, urls)
			}
		}()
	}
	wg.Wait()
}

// probe measures failover: every 100 ms it sends one write (an event that
// triggers nothing, always with the same id) to each surviving node, without
// waiting for earlier attempts (a node forwarding to a paused leader hangs),
// until one is acknowledged. It returns the time from `from` to that answer.
func probe(ctx context.Context, tag string, from time.Time, nodes []*node, max time.Duration) (time.Duration, bool) {
	body := map[string]any{"name": probeName, "id": "probe-" + tag, "data": map[string]any{}}
	ctx, cancel := context.WithDeadline(ctx, from.Add(max))
	defer cancel()
	won := make(chan time.Time, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, n := range nodes {
			if !n.running() || n.isStopped() {
				continue
			}
			wg.Add(1)
			go func(u string) {
				defer wg.Done()
				code, _, err := postJSON(ctx, u+"/e/key", 2*time.Second, body)
				if err == nil && code == 200 {
					select {
					case won <- time.Now():
					default:
					}
				}
			}(n.url())
		}
		select {
		case t := <-won:
			cancel()
			return t.Sub(from), true
		case <-ctx.Done():
			return time.Since(from), false
		case <-tick.C:
		}
	}
}
