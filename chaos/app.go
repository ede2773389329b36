package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// ---------------------------------------------------------------------------
// The test app: an in-process HTTP server speaking the SDK protocol
// (inngest-sdk-protocol.md §3-§6) for one function, chaos-chain, triggered by
// chaos/go, made of three step.run steps s1, s2, s3. Every step execution is
// journaled (one JSON line, fsynced) before the answer is sent, so the checker
// can count executions, including duplicates.
//
// A step's output is {"step":k,"nonce":<random>,"prev":<nonce of step k-1 as
// the app received it>,"uid":<event uid>}; the final answer (200) is
// {"uid":...,"nonces":[n1,n2,n3]} as memoized by the server. That lets the
// checker verify memoization: each accepted step saw the accepted result of
// the step before it, and the run output holds the accepted results.

const (
	appID     = "chaos"
	fnID      = "chaos-chain"
	eventName = "chaos/go"
	probeName = "chaos/probe" // triggers nothing: used to measure failover
	appSDK    = "cairn-chaos:v0"
)

var stepNames = []string{"s1", "s2", "s3"}

func stepID(name string) string {
	s := sha1.Sum([]byte(name))
	return hex.EncodeToString(s[:])
}

var stepIDs = func() []string {
	out := make([]string, len(stepNames))
	for i, n := range stepNames {
		out[i] = stepID(n)
	}
	return out
}()

// journalEntry is one line of the app journal.
type journalEntry struct {
	T       int64  `json:"t"`    // unix ms
	Kind    string `json:"kind"` // "step" (a step body ran) or "final"
	Run     string `json:"run"`
	UID     string `json:"uid"`
	Phase   string `json:"phase"`
	Step    int    `json:"step,omitempty"` // 1..3
	StepID  string `json:"step_id,omitempty"`
	Attempt int    `json:"attempt"`
	Nonce   string `json:"nonce,omitempty"`
	Prev    string `json:"prev,omitempty"`
	// Final: the nonces the app received memoized.
	Nonces []string `json:"nonces,omitempty"`
}

type stepOut struct {
	Step  int    `json:"step"`
	Nonce string `json:"nonce"`
	Prev  string `json:"prev"`
	UID   string `json:"uid"`
}

// phaseStats are latency figures the app measures, per load phase.
type phaseStats struct {
	hops      durs // 206 answer sent -> next call of the run arrives
	e2e       durs // event first sent -> final 200 answered
	calls     int
	steps     int
	finals    map[string]time.Time // uid -> first final answer
	runE2E    map[string]time.Duration
	lastFinal time.Time
}

type testApp struct {
	name      string
	url       string // serve URL
	srv       *http.Server
	stepDelay time.Duration

	jmu     sync.Mutex
	journal *os.File
	jw      *bufio.Writer
	entries []journalEntry // everything journaled, for the checker

	mu      sync.Mutex
	phases  map[string]*phaseStats
	lastAns map[string]time.Time // run -> when its last 206 was sent
}

func startApp(name, host, journalPath string, stepDelay time.Duration) (*testApp, error) {
	jf, err := os.OpenFile(journalPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		jf.Close()
		return nil, err
	}
	a := &testApp{name: name, url: fmt.Sprintf("http://%s/api/inngest", ln.Addr()), stepDelay: stepDelay,
		journal: jf, jw: bufio.NewWriter(jf), phases: map[string]*phaseStats{}, lastAns: map[string]time.Time{}}
	a.srv = &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.srv.Serve(ln) }()
	return a, nil
}

func (a *testApp) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
	a.jmu.Lock()
	a.jw.Flush()
	a.journal.Sync()
	a.journal.Close()
	a.jmu.Unlock()
}

// registerBody is what the app POSTs to /fn/register (protocol §3.3).
func (a *testApp) registerBody() map[string]any {
	return map[string]any{
		"url": a.url, "deployType": "ping", "framework": "chaos", "appName": appID, "sdk": "go:" + appSDK, "v": "0.1",
		"functions": []any{map[string]any{
			"id": fnID, "name": "chain",
			"triggers": []any{map[string]any{"event": eventName}},
			"steps": map[string]any{"step": map[string]any{"id": "step", "name": "step",
				"runtime": map[string]any{"type": "http", "url": a.url + "?fnId=" + fnID + "&stepId=step"}}},
		}},
	}
}

func (a *testApp) phase(p string) *phaseStats {
	ps := a.phases[p]
	if ps == nil {
		ps = &phaseStats{finals: map[string]time.Time{}, runE2E: map[string]time.Duration{}}
		a.phases[p] = ps
	}
	return ps
}

// snapshot copies a phase's figures.
func (a *testApp) stats(p string) phaseStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	ps := a.phase(p)
	out := *ps
	out.hops = append(durs(nil), ps.hops...)
	out.e2e = append(durs(nil), ps.e2e...)
	out.finals = make(map[string]time.Time, len(ps.finals))
	for k, v := range ps.finals {
		out.finals[k] = v
	}
	out.runE2E = make(map[string]time.Duration, len(ps.runE2E))
	for k, v := range ps.runE2E {
		out.runE2E[k] = v
	}
	return out
}

func (a *testApp) finalsDone(p string, uids []string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	ps := a.phase(p)
	n := 0
	for _, u := range uids {
		if _, ok := ps.finals[u]; ok {
			n++
		}
	}
	return n
}

func (a *testApp) journalEntries() []journalEntry {
	a.jmu.Lock()
	defer a.jmu.Unlock()
	return append([]journalEntry(nil), a.entries...)
}

// record appends to the journal and fsyncs it (step executions), before
// the answer leaves the app.
func (a *testApp) record(e journalEntry, sync bool) {
	b, _ := json.Marshal(e)
	a.jmu.Lock()
	defer a.jmu.Unlock()
	a.entries = append(a.entries, e)
	a.jw.Write(b)
	a.jw.WriteByte('\n')
	if sync {
		a.jw.Flush()
		if err := a.journal.Sync(); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: journal fsync: %v\n", err)
		}
	}
}

func writeSDK(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Inngest-SDK", appSDK)
	h.Set("X-Inngest-Req-Version", "2")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_ = http.NewResponseController(w).Flush()
}

type callReq struct {
	Event struct {
		Data struct {
			UID    string `json:"uid"`
			Phase  string `json:"phase"`
			SentMs int64  `json:"sent_ms"`
		} `json:"data"`
	} `json:"event"`
	Steps map[string]json.RawMessage `json:"steps"`
	Ctx   struct {
		RunID   string `json:"run_id"`
		Attempt int    `json:"attempt"`
	} `json:"ctx"`
}

func (a *testApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	switch r.Method {
	case http.MethodPost:
	case http.MethodPut:
		_, _ = io.Copy(io.Discard, r.Body)
		writeSDK(w, 200, []byte(`{"message":"registered by the harness","modified":false}`))
		return
	default:
		writeSDK(w, 200, []byte(`{"function_count":1,"mode":"dev","sdk":"`+appSDK+`"}`))
		return
	}
	var body callReq
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Ctx.RunID == "" {
		writeSDK(w, 500, []byte(`{"type":"internal","name":"Error","message":"bad request body"}`))
		return
	}
	if r.URL.Query().Get("fnId") != fnID {
		writeSDK(w, 500, []byte(`{"type":"internal","name":"Error","message":"unknown-function-id"}`))
		return
	}
	run, d := body.Ctx.RunID, body.Event.Data
	a.mu.Lock()
	ps := a.phase(d.Phase)
	ps.calls++
	if t, ok := a.lastAns[run]; ok {
		ps.hops = append(ps.hops, arrived.Sub(t))
		delete(a.lastAns, run)
	}
	a.mu.Unlock()

	// The memoized outputs, in step order; the first missing step runs now.
	var nonces []string
	prev := ""
	for k, id := range stepIDs {
		raw, ok := body.Steps[id]
		if !ok {
			a.runStep(w, run, d.UID, d.Phase, k, prev, body.Ctx.Attempt)
			return
		}
		var memo struct {
			Data stepOut `json:"data"`
		}
		_ = json.Unmarshal(raw, &memo)
		nonces = append(nonces, memo.Data.Nonce)
		prev = memo.Data.Nonce
	}
	out, _ := json.Marshal(map[string]any{"uid": d.UID, "nonces": nonces})
	a.record(journalEntry{T: time.Now().UnixMilli(), Kind: "final", Run: run, UID: d.UID, Phase: d.Phase,
		Attempt: body.Ctx.Attempt, Nonces: nonces}, false)
	writeSDK(w, 200, out)
	now := time.Now()
	a.mu.Lock()
	if _, seen := ps.finals[d.UID]; !seen {
		ps.finals[d.UID] = now
		if d.SentMs > 0 {
			ps.e2e = append(ps.e2e, now.Sub(time.UnixMilli(d.SentMs)))
			ps.runE2E[run] = now.Sub(time.UnixMilli(d.SentMs))
		}
	}
	ps.lastFinal = now
	a.mu.Unlock()
}

func (a *testApp) runStep(w http.ResponseWriter, run, uid, phase string, k int, prev string, attempt int) {
	if a.stepDelay > 0 {
		time.Sleep(a.stepDelay)
	}
	var nb [8]byte
	_, _ = rand.Read(nb[:])
	out := stepOut{Step: k + 1, Nonce: hex.EncodeToString(nb[:]), Prev: prev, UID: uid}
	a.record(journalEntry{T: time.Now().UnixMilli(), Kind: "step", Run: run, UID: uid, Phase: phase, Step: k + 1,
		StepID: stepIDs[k], Attempt: attempt, Nonce: out.Nonce, Prev: prev}, true)
	op, _ := json.Marshal([]map[string]any{{
		"id": stepIDs[k], "op": "StepRun", "name": stepNames[k], "displayName": stepNames[k], "data": out,
	}})
	writeSDK(w, 206, op)
	a.mu.Lock()
	a.lastAns[run] = time.Now()
	a.phase(phase).steps++
	a.mu.Unlock()
}
