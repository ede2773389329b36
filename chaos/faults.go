package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// ---------------------------------------------------------------------------
// Fault injection (the nemesis). Each cycle injects one fault, measures
// failover when the leader was hit (fault until a write is acknowledged by
// the survivors), heals, waits for the node to be healthy and caught up, and
// rests for interval ± jitter. Every cycle is a line of nemesis.jsonl.

type faultRec struct {
	N          int    `json:"n"`
	Kind       string `json:"kind"`
	Node       string `json:"node"`
	WasLeader  bool   `json:"was_leader"`
	Start      int64  `json:"start"`    // unix ms: injecting the fault began
	Injected   int64  `json:"injected"` // unix ms: the fault was in place (process gone / stopped, routes added)
	End        int64  `json:"end"`      // unix ms: healed (restarted / resumed / routes removed)
	FailoverMs int64  `json:"failover_ms,omitempty"`
	FailoverOK bool   `json:"failover_ok,omitempty"`
	NewLeader  string `json:"new_leader,omitempty"`
	HealthyMs  int64  `json:"healthy_ms,omitempty"` // heal -> node healthy
	CatchUpMs  int64  `json:"catch_up_ms,omitempty"`
	Problem    string `json:"problem,omitempty"`
	Note       string `json:"note,omitempty"`
}

type nemesis struct {
	cfg  *config
	c    *cluster
	rng  *rand.Rand
	f    *os.File
	mu   sync.Mutex
	recs []faultRec
	// isolated: node URL -> intervals during which it was cut off or paused.
	isolated []isolation
}

type isolation struct {
	URL        string
	Node       string
	Start, End int64
}

func (nm *nemesis) add(r faultRec) {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	nm.recs = append(nm.recs, r)
	b, _ := json.Marshal(r)
	nm.f.Write(append(b, '\n'))
	status := "ok"
	if r.Problem != "" {
		status = "PROBLEM: " + r.Problem
	}
	fo := ""
	if r.WasLeader {
		fo = fmt.Sprintf(" failover=%dms new_leader=%s", r.FailoverMs, r.NewLeader)
	}
	fmt.Printf("  [%s] fault %d: %s %s (leader=%v)%s healthy=%dms catch_up=%dms %s %s\n",
		time.Now().Format("15:04:05"), r.N, r.Kind, r.Node, r.WasLeader, fo, r.HealthyMs, r.CatchUpMs, r.Note, status)
}

func (nm *nemesis) records() []faultRec {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	return append([]faultRec(nil), nm.recs...)
}

func (nm *nemesis) rest(ctx context.Context) {
	d := nm.cfg.interval
	if nm.cfg.jitter > 0 {
		d += time.Duration(nm.rng.Int64N(int64(2*nm.cfg.jitter))) - nm.cfg.jitter
	}
	_ = sleepCtx(ctx, max(d, 0))
}

func (nm *nemesis) others(n *node) []*node {
	var out []*node
	for _, x := range nm.c.nodes {
		if x != n {
			out = append(out, x)
		}
	}
	return out
}

// run injects faults until cfg.kills cycles are done, the chaos time budget
// is spent, or ctx ends.
func (nm *nemesis) run(ctx context.Context) {
	deadline := time.Now().Add(nm.cfg.chaosMax)
	for i := 1; i <= nm.cfg.kills && ctx.Err() == nil; i++ {
		if time.Now().After(deadline) {
			fmt.Printf("  chaos time budget (%s) spent after %d faults\n", nm.cfg.chaosMax, i-1)
			return
		}
		var r faultRec
		switch nm.cfg.scenario {
		case "leader-kill":
			r = nm.leaderKill(ctx, i)
		case "leader-restart":
			r = nm.leaderRestart(ctx, i)
		case "crash-restart":
			r = nm.crashRestart(ctx, i)
		case "sigstop":
			r = nm.sigstop(ctx, i)
		case "torn-wal":
			r = nm.tornWAL(ctx, i)
		case "partition", "partition-proxy":
			r = nm.partition(ctx, i)
		}
		nm.add(r)
		if strings.HasPrefix(r.Problem, "fatal:") {
			fmt.Printf("  stopping the fault loop: %s\n", r.Problem)
			return
		}
		nm.rest(ctx)
	}
}

// restart brings n back and waits until it is healthy and caught up.
func (nm *nemesis) restart(ctx context.Context, n *node, r *faultRec) {
	t := time.Now()
	if err := n.start(); err != nil {
		r.Problem = "fatal: restart failed: " + err.Error()
		return
	}
	r.End = t.UnixMilli()
	nm.afterHeal(ctx, n, r, t)
}

func (nm *nemesis) afterHeal(ctx context.Context, n *node, r *faultRec, t time.Time) {
	if err := nm.c.waitHealthy(ctx, n, 60*time.Second); err != nil {
		if ctx.Err() != nil {
			r.Note += " (interrupted before the node was healthy)"
			return
		}
		r.Problem = "fatal: node did not come back: " + err.Error()
		return
	}
	r.HealthyMs = time.Since(t).Milliseconds()
	d, err := nm.c.waitCaughtUp(ctx, n, 60*time.Second)
	r.CatchUpMs = d.Milliseconds()
	if err != nil {
		r.Problem = "slow catch-up: " + err.Error()
	}
}

func (nm *nemesis) findLeader(ctx context.Context, r *faultRec) *node {
	l := nm.c.waitLeader(ctx, 60*time.Second, nil)
	if l == nil {
		r.Problem = "fatal: no leader for 60s before the fault"
	}
	return l
}

func (nm *nemesis) measureFailover(ctx context.Context, r *faultRec, t0 time.Time, survivors []*node) {
	fo, ok := probe(ctx, fmt.Sprintf("%s-%s-%d", nm.cfg.runID, r.Kind, r.N), t0, survivors, 60*time.Second)
	r.FailoverMs, r.FailoverOK = fo.Milliseconds(), ok
	if !ok {
		r.Problem = "no write acknowledged by the survivors within 60s"
		return
	}
	if l := nm.c.leader(ctx); l != nil {
		r.NewLeader = l.id
	}
}

func (nm *nemesis) leaderKill(ctx context.Context, i int) faultRec {
	return nm.stopLeader(ctx, i, "leader-kill", (*node).kill9)
}

// leaderRestart is a rolling-upgrade step: SIGTERM the leader (it drains
// its app calls and hands leadership over), restart it after -down.
func (nm *nemesis) leaderRestart(ctx context.Context, i int) faultRec {
	return nm.stopLeader(ctx, i, "leader-restart", (*node).stopGraceful)
}

// stopLeader stops the leader with stop, measures failover meanwhile, and
// restarts it -down after the fault.
func (nm *nemesis) stopLeader(ctx context.Context, i int, kind string, stop func(*node)) faultRec {
	r := faultRec{N: i, Kind: kind, WasLeader: true}
	l := nm.findLeader(ctx, &r)
	if l == nil {
		return r
	}
	r.Node = l.id
	t0 := time.Now()
	r.Start = t0.UnixMilli()
	stopped := make(chan struct{})
	go func() { stop(l); close(stopped) }()
	r.Injected = time.Now().UnixMilli()
	nm.measureFailover(ctx, &r, t0, nm.others(l))
	<-stopped
	if kind == "leader-restart" {
		r.Note = "stopped in " + fmtDur(time.Since(t0))
	}
	_ = sleepCtx(ctx, time.Until(t0.Add(nm.cfg.down)))
	nm.restart(ctx, l, &r)
	return r
}

func (nm *nemesis) crashRestart(ctx context.Context, i int) faultRec {
	r := faultRec{N: i, Kind: "crash-restart"}
	l := nm.findLeader(ctx, &r)
	if l == nil {
		return r
	}
	v := nm.c.nodes[nm.rng.IntN(len(nm.c.nodes))]
	r.Node, r.WasLeader = v.id, v == l
	down := 200*time.Millisecond + time.Duration(nm.rng.Int64N(int64(2*nm.cfg.down)))
	r.Note = "down " + fmtDur(down)
	t0 := time.Now()
	r.Start = t0.UnixMilli()
	v.kill9()
	r.Injected = time.Now().UnixMilli()
	if r.WasLeader {
		nm.measureFailover(ctx, &r, t0, nm.others(v))
	}
	_ = sleepCtx(ctx, time.Until(t0.Add(down)))
	nm.restart(ctx, v, &r)
	return r
}

func (nm *nemesis) sigstop(ctx context.Context, i int) faultRec {
	span := nm.cfg.stopMax - nm.cfg.stopMin
	d := nm.cfg.stopMin
	if span > 0 {
		d += time.Duration(nm.rng.Int64N(int64(span)))
	}
	return nm.isolateLeader(ctx, i, "sigstop", "paused", d, (*node).sigstop, (*node).sigcont)
}

// isolateLeader cuts the leader off for d (a pause, a partition), measures
// failover meanwhile, undoes the cut, records the window in which the
// leader must not acknowledge anything, and waits until it has caught up.
func (nm *nemesis) isolateLeader(ctx context.Context, i int, kind, verb string, d time.Duration, cut, undo func(*node) error) faultRec {
	r := faultRec{N: i, Kind: kind, WasLeader: true}
	l := nm.findLeader(ctx, &r)
	if l == nil {
		return r
	}
	r.Node, r.Note = l.id, verb+" "+fmtDur(d)
	t0 := time.Now()
	r.Start = t0.UnixMilli()
	if err := cut(l); err != nil {
		r.Problem = "fatal: " + kind + ": " + err.Error()
		_ = undo(l)
		return r
	}
	r.Injected = time.Now().UnixMilli()
	nm.measureFailover(ctx, &r, t0, nm.others(l))
	_ = sleepCtx(ctx, time.Until(t0.Add(d)))
	t1 := time.Now()
	if err := undo(l); err != nil {
		r.Problem = "fatal: undoing " + kind + ": " + err.Error()
		return r
	}
	r.End = t1.UnixMilli()
	nm.mu.Lock()
	nm.isolated = append(nm.isolated, isolation{URL: l.url(), Node: l.id, Start: r.Start, End: r.End})
	nm.mu.Unlock()
	nm.afterHeal(ctx, l, &r, t1)
	return r
}

// newestWAL returns the highest-numbered Pebble WAL (*.log) of a raft dir.
func newestWAL(dir string) (string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(m) == 0 {
		return "", fmt.Errorf("no *.log in %s", dir)
	}
	sort.Strings(m) // fixed-width numbers: lexical order is numeric order
	return m[len(m)-1], nil
}

func (nm *nemesis) tornWAL(ctx context.Context, i int) faultRec {
	r := faultRec{N: i, Kind: "torn-wal"}
	l := nm.findLeader(ctx, &r)
	if l == nil {
		return r
	}
	fs := nm.others(l)
	v := fs[nm.rng.IntN(len(fs))]
	r.Node = v.id
	t0 := time.Now()
	r.Start = t0.UnixMilli()
	v.kill9()
	r.Injected = time.Now().UnixMilli()
	wal, err := newestWAL(filepath.Join(v.dataDir, "raft"))
	if err != nil {
		r.Problem = "fatal: " + err.Error()
		return r
	}
	st, err := os.Stat(wal)
	if err != nil {
		r.Problem = "fatal: " + err.Error()
		return r
	}
	cut := int64(0)
	if st.Size() > 0 {
		cut = 1 + nm.rng.Int64N(min(int64(nm.cfg.tornMax), st.Size()))
	}
	if err := os.Truncate(wal, st.Size()-cut); err != nil {
		r.Problem = "fatal: truncate: " + err.Error()
		return r
	}
	r.Note = fmt.Sprintf("%s: %d -> %d bytes (cut %d)", filepath.Base(wal), st.Size(), st.Size()-cut, cut)
	_ = sleepCtx(ctx, time.Until(t0.Add(nm.cfg.down)))
	nm.restart(ctx, v, &r)
	return r
}

func nodeIndex(c *cluster, n *node) int {
	for i, x := range c.nodes {
		if x == n {
			return i + 1
		}
	}
	return 0
}

func (nm *nemesis) partition(ctx context.Context, i int) faultRec {
	cut := func(l *node) error {
		var others []int
		for _, o := range nm.others(l) {
			others = append(others, nodeIndex(nm.c, o))
		}
		return nm.c.partition(nodeIndex(nm.c, l), others)
	}
	heal := func(*node) error { return nm.c.heal() }
	return nm.isolateLeader(ctx, i, "partition", "isolated", nm.cfg.partitionFor, cut, heal)
}
