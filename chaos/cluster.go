package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-dev/cairn/internal/faultnet"
	"github.com/cairn-dev/cairn/internal/proc"
)

// httpc talks to Cairn; every call also has its own context deadline.
var httpc = &http.Client{
	Timeout: 30 * time.Second,
	Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	},
}

func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// getJSON GETs url with a timeout and decodes a 2xx answer into out.
func getJSON(ctx context.Context, url string, timeout time.Duration, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("GET %s: HTTP %d: %s", url, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode, nil
}

// postJSON POSTs body and returns the status and raw answer.
func postJSON(ctx context.Context, url string, timeout time.Duration, body any) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// ---------------------------------------------------------------------------
// Nodes

type selfView struct {
	NodeID       string `json:"node_id"`
	State        string `json:"state"`
	LeaderID     string `json:"leader_id"`
	Term         string `json:"term"`
	CommitIndex  string `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastLogIndex string `json:"last_log_index"`
}

type clusterView struct {
	Leader  string   `json:"leader_id"`
	Self    selfView `json:"self"`
	Members []struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raft_addr"`
		HTTPAddr string `json:"http_addr"`
		Voter    bool   `json:"voter"`
	} `json:"members"`
	Applied  uint64 `json:"applied_index"`
	LogSum   string `json:"log_digest"`
	StateSum string `json:"state_digest"`
}

func atou(s string) uint64 { v, _ := strconv.ParseUint(s, 10, 64); return v }

// clusterSecret is what the harness's nodes prove to each other (cairn
// start needs one to join a cluster); the harness does not test it.
const clusterSecret = "chaos-harness-cluster-secret"

// node is one Cairn process (restartable on the same data dir and ports).
type node struct {
	id       string
	netns    string // "" = root namespace
	host     string
	httpPort int
	raftPort int
	dataDir  string
	logPath  string
	bin      string
	args     []string
	// gomaxprocs > 0 sets GOMAXPROCS for the process.
	gomaxprocs int

	mu      sync.Mutex
	proc    *proc.Child
	starts  int
	stopped bool // SIGSTOPped by us
	// expected is true while the process is down on purpose (killed by us).
	expected bool
	// unexpected exits seen by the watcher.
	exits []string
}

func (n *node) url() string { return fmt.Sprintf("http://%s:%d", n.host, n.httpPort) }
func (n *node) httpAddr() string {
	return net.JoinHostPort(n.host, strconv.Itoa(n.httpPort))
}
func (n *node) raftAddr() string { return net.JoinHostPort(n.host, strconv.Itoa(n.raftPort)) }

func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.Exited()
}

func (n *node) isStopped() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopped
}

func (n *node) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.Exited() {
		return 0
	}
	return n.proc.Pid()
}

// start (re)starts the process with its fixed command line.
func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.Exited() {
		return fmt.Errorf("%s already running", n.id)
	}
	bin, args := n.bin, n.args
	if n.netns != "" {
		bin, args = "ip", append([]string{"netns", "exec", n.netns, n.bin}, n.args...)
	}
	env := []string{"CAIRN_APP_URLS=", "CAIRN_PEERS=", "CAIRN_LOG_JSON=false"}
	if n.gomaxprocs > 0 {
		env = append(env, fmt.Sprintf("GOMAXPROCS=%d", n.gomaxprocs))
	}
	c, err := proc.Start(n.id, proc.Options{Env: env, LogPath: n.logPath, Append: true, Banner: "chaos"}, bin, args...)
	if err != nil {
		return err
	}
	n.proc, n.starts, n.expected, n.stopped = c, n.starts+1, false, false
	go func() {
		<-c.Done()
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.proc == c && !n.expected {
			n.exits = append(n.exits, fmt.Sprintf("%s: %s exited unexpectedly (start #%d): %v",
				time.Now().Format(time.RFC3339), n.id, n.starts, c.Err()))
		}
	}()
	return nil
}

// kill9 SIGKILLs the process and waits until it is gone.
func (n *node) kill9() {
	n.mu.Lock()
	c := n.proc
	n.expected, n.stopped = true, false
	n.mu.Unlock()
	if c != nil {
		c.Kill()
	}
}

// sigstop / sigcont pause and resume the process.
func (n *node) sigstop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return errors.New("not running")
	}
	n.stopped = true
	return n.proc.Signal(syscall.SIGSTOP)
}

func (n *node) sigcont() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return errors.New("not running")
	}
	n.stopped = false
	return n.proc.Signal(syscall.SIGCONT)
}

func (n *node) stopGraceful() {
	n.mu.Lock()
	c := n.proc
	n.expected = true
	n.mu.Unlock()
	if c != nil {
		c.Stop(15 * time.Second)
	}
}

func (n *node) unexpectedExits() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.exits...)
}

// view reads GET /v1/cluster from this node.
func (n *node) view(ctx context.Context, digest bool, timeout time.Duration) (*clusterView, error) {
	var v clusterView
	u := n.url() + "/v1/cluster"
	if digest {
		u += "?digest=true"
	}
	if _, err := getJSON(ctx, u, timeout, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ---------------------------------------------------------------------------
// Cluster

type cluster struct {
	nodes []*node
	mode  string // "cluster" or "single"
	cfg   *config
	ns    *netns         // non-nil in the partition scenario
	px    *faultnet.Mesh // non-nil in the partition-proxy scenario
}

// partition cuts node i (1-based) off from others, by netns routes or proxies.
func (c *cluster) partition(i int, others []int) error {
	if c.ns != nil {
		return c.ns.partition(i, others)
	}
	if c.px != nil {
		var js []int
		for _, j := range others {
			js = append(js, j-1)
		}
		c.px.Cut(i-1, js...)
		return nil
	}
	return fmt.Errorf("no way to partition in this scenario")
}

// heal undoes every partition.
func (c *cluster) heal() error {
	if c.ns != nil {
		return c.ns.heal()
	}
	if c.px != nil {
		c.px.Heal()
	}
	return nil
}

// newCluster lays out n nodes (3 for a cluster, 1 for `cairn dev`). With
// proxied, each node listens on its own loopback IP behind faultnet proxies.
func newCluster(cfg *config, mode, baseDir, logDir string, ns *netns, proxied bool) (*cluster, error) {
	c := &cluster{mode: mode, cfg: cfg, ns: ns}
	if proxied {
		c.px = &faultnet.Mesh{}
	}
	count := 3
	if mode == "single" {
		count = 1
	}
	for i := 1; i <= count; i++ {
		id := fmt.Sprintf("n%d", i)
		host := "127.0.0.1"
		nsName := ""
		if ns != nil {
			host, nsName = ns.addr(i), ns.name(i)
		}
		if c.px != nil {
			host = proxyIP(i)
		}
		var hp, rp int
		var err error
		if ns != nil {
			// Each node has its own namespace: fixed ports are free there.
			hp, rp = 8288, 8289
		} else {
			if hp, err = freePort(host); err != nil {
				return nil, err
			}
			for rp == 0 || rp == hp {
				if rp, err = freePort(host); err != nil {
					return nil, err
				}
			}
		}
		prefix := mode
		if mode == "single" {
			id = "dev"
		}
		n := &node{id: id, netns: nsName, host: host, httpPort: hp, raftPort: rp, bin: cfg.bin, gomaxprocs: cfg.gomaxprocs,
			dataDir: filepath.Join(baseDir, prefix+"-"+id), logPath: filepath.Join(logDir, prefix+"-"+id+".log")}
		common := []string{"--data-dir", n.dataDir, "--host", host, "--port", strconv.Itoa(hp),
			"--raft-addr", n.raftAddr(), "--call-timeout", cfg.callTimeout.String(), "--log-level", "info"}
		if cfg.maxInflight > 0 {
			common = append(common, "--max-inflight", strconv.Itoa(cfg.maxInflight))
		}
		if c.px != nil {
			px, err := c.px.Add(host, n.raftAddr(), n.httpAddr())
			if err != nil {
				c.px.Close()
				return nil, err
			}
			common = append(common, "--raft-advertise", px[0], "--http-advertise", px[1])
		}
		switch {
		case mode == "single":
			// The harness names its app (-u): no discovery of others.
			n.args = append([]string{"dev", "--node-id", "dev", "--no-discovery"}, common...)
		case i == 1:
			// The harness drives the cluster without keys.
			n.args = append([]string{"start", "--insecure", "--node-id", id, "--bootstrap", "--cluster-secret", clusterSecret}, common...)
		default:
			n.args = append([]string{"start", "--insecure", "--node-id", id, "--join", c.nodesJoinAddr(), "--cluster-secret", clusterSecret}, common...)
		}
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

func (c *cluster) nodesJoinAddr() string { return c.nodes[0].httpAddr() }

func (c *cluster) urls() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.url())
	}
	return out
}

// start boots the nodes and waits until every one is a member and knows the
// leader.
func (c *cluster) start(ctx context.Context) error {
	if err := c.nodes[0].start(); err != nil {
		return err
	}
	if c.mode == "cluster" {
		// n1 must lead its one-node cluster before the others join it.
		if err := c.waitHealthy(ctx, c.nodes[0], 60*time.Second); err != nil {
			return err
		}
		for _, n := range c.nodes[1:] {
			if err := n.start(); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		v, err := c.nodes[0].view(ctx, false, 2*time.Second)
		if err == nil && len(v.Members) == len(c.nodes) {
			ok := true
			for _, n := range c.nodes {
				if err := c.waitHealthy(ctx, n, 30*time.Second); err != nil {
					return err
				}
				ok = ok && n.running()
			}
			if ok {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster did not form within 90s (last error %v)\n--- %s ---\n%s", err, c.nodes[0].logPath, proc.TailFile(c.nodes[0].logPath, 30))
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitHealthy waits until n answers /v1/cluster and knows a leader.
func (c *cluster) waitHealthy(ctx context.Context, n *node, max time.Duration) error {
	deadline := time.Now().Add(max)
	var last error
	for {
		if !n.running() {
			return fmt.Errorf("%s is not running (exited: %v)\n--- %s ---\n%s", n.id, n.unexpectedExits(), n.logPath, proc.TailFile(n.logPath, 40))
		}
		v, err := n.view(ctx, false, 2*time.Second)
		if err == nil && v.Self.LeaderID != "" && (v.Self.State == "Leader" || v.Self.State == "Follower") {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("state %s, leader %q", v.Self.State, v.Self.LeaderID)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy after %s: %v", n.id, max, last)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// leader returns the node that says it is leader with the highest term
// among the running, unpaused nodes (nil if none).
func (c *cluster) leader(ctx context.Context) *node {
	var best *node
	var bestTerm uint64
	for _, n := range c.nodes {
		if !n.running() || n.isStopped() {
			continue
		}
		v, err := n.view(ctx, false, time.Second)
		if err != nil || v.Self.State != "Leader" {
			continue
		}
		if t := atou(v.Self.Term); best == nil || t > bestTerm {
			best, bestTerm = n, t
		}
	}
	return best
}

func (c *cluster) waitLeader(ctx context.Context, max time.Duration, among []*node) *node {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if l := c.leader(ctx); l != nil && (among == nil || contains(among, l)) {
			return l
		}
		_ = sleepCtx(ctx, 100*time.Millisecond)
	}
	return nil
}

func contains(ns []*node, n *node) bool {
	for _, x := range ns {
		if x == n {
			return true
		}
	}
	return false
}

// waitCaughtUp waits until n has applied at least the leader's commit index
// as read at the call.
func (c *cluster) waitCaughtUp(ctx context.Context, n *node, max time.Duration) (time.Duration, error) {
	start := time.Now()
	l := c.leader(ctx)
	if l == nil {
		return 0, errors.New("no leader to catch up with")
	}
	lv, err := l.view(ctx, false, 2*time.Second)
	if err != nil {
		return 0, err
	}
	target := atou(lv.Self.CommitIndex)
	for {
		v, err := n.view(ctx, false, 2*time.Second)
		if err == nil && v.Self.AppliedIndex >= target {
			return time.Since(start), nil
		}
		if time.Since(start) > max {
			return time.Since(start), fmt.Errorf("%s applied %v < leader commit %d after %s", n.id, appliedOf(v), target, max)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return time.Since(start), err
		}
	}
}

func appliedOf(v *clusterView) any {
	if v == nil {
		return "?"
	}
	return v.Self.AppliedIndex
}

// register posts the app's register body through a random node until 200.
func (c *cluster) register(ctx context.Context, a *testApp) error {
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for i := 0; time.Now().Before(deadline); i++ {
		n := c.nodes[i%len(c.nodes)]
		code, raw, err := postJSON(ctx, n.url()+"/fn/register", 10*time.Second, a.registerBody())
		if err == nil && code == 200 {
			return nil
		}
		last = fmt.Sprintf("%d %s %v", code, raw, err)
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("register: %s", last)
}

// ensureAllUp resumes paused nodes and restarts dead ones (heal).
func (c *cluster) ensureAllUp(ctx context.Context) []string {
	var notes []string
	for _, n := range c.nodes {
		if n.isStopped() {
			_ = n.sigcont()
			notes = append(notes, n.id+" resumed (SIGCONT)")
		}
		if !n.running() {
			if err := n.start(); err != nil {
				notes = append(notes, fmt.Sprintf("%s restart failed: %v", n.id, err))
			} else {
				notes = append(notes, n.id+" restarted")
			}
		}
	}
	for _, n := range c.nodes {
		if err := c.waitHealthy(ctx, n, 60*time.Second); err != nil {
			notes = append(notes, fmt.Sprintf("%s not healthy after heal: %v", n.id, err))
		}
	}
	return notes
}

// cpuTicks sums CPU ticks of the running node processes.
func (c *cluster) cpuTicks() uint64 {
	var t uint64
	for _, n := range c.nodes {
		if p := n.pid(); p > 0 {
			ticks, _ := proc.CPUTicks(p) // 0 for a node that exited meanwhile
			t += ticks
		}
	}
	return t
}

// logCounters returns the highest last log index among the running nodes
// (the leader's) and the sum of their log fsyncs (raft.log_syncs in
// /v1/status, counted since each node started: compare two readings with
// no restart between).
func (c *cluster) logCounters(ctx context.Context) (index, syncs uint64) {
	for _, n := range c.nodes {
		if !n.running() || n.isStopped() {
			continue
		}
		var st struct {
			Raft struct {
				LastLogIndex string `json:"last_log_index"`
				LogSyncs     uint64 `json:"log_syncs"`
			} `json:"raft"`
		}
		if _, err := getJSON(ctx, n.url()+"/v1/status", time.Second, &st); err != nil {
			continue
		}
		index = max(index, atou(st.Raft.LastLogIndex))
		syncs += st.Raft.LogSyncs
	}
	return index, syncs
}

// convergence waits until all nodes report the same applied index, then
// compares their log and state digests.
type convergence struct {
	OK      bool
	Applied map[string]uint64
	LogSum  map[string]string
	State   map[string]string
	Note    string
}

func (c *cluster) converge(ctx context.Context, max time.Duration) convergence {
	deadline := time.Now().Add(max)
	var cv convergence
	for {
		cv = convergence{Applied: map[string]uint64{}, LogSum: map[string]string{}, State: map[string]string{}}
		errs := 0
		for _, n := range c.nodes {
			v, err := n.view(ctx, true, 30*time.Second)
			if err != nil {
				errs++
				cv.Note = err.Error()
				continue
			}
			cv.Applied[n.id], cv.LogSum[n.id], cv.State[n.id] = v.Applied, v.LogSum, v.StateSum
		}
		if errs == 0 {
			same := true
			first := c.nodes[0].id
			for _, n := range c.nodes[1:] {
				same = same && cv.Applied[n.id] == cv.Applied[first]
			}
			if same {
				cv.OK = true
				for _, n := range c.nodes[1:] {
					if cv.LogSum[n.id] != cv.LogSum[first] || cv.State[n.id] != cv.State[first] {
						cv.OK = false
						cv.Note = "same applied index, different digests"
					}
				}
				return cv
			}
			cv.Note = "applied indexes differ"
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return cv
		}
		_ = sleepCtx(ctx, time.Second)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ---------------------------------------------------------------------------
// Leadership monitor: polls every node and records which node led each term
// (an observed check of election safety, I9) and how many terms there were.

type monitor struct {
	mu        sync.Mutex
	leaders   map[uint64]map[string]time.Time // term -> leader ids seen -> first seen
	conflicts []string
}

func (c *cluster) monitor(ctx context.Context, every time.Duration) *monitor {
	m := &monitor{leaders: map[uint64]map[string]time.Time{}}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, n := range c.nodes {
				if !n.running() || n.isStopped() {
					continue
				}
				v, err := n.view(ctx, false, 500*time.Millisecond)
				if err != nil || v.Self.State != "Leader" {
					continue
				}
				m.saw(atou(v.Self.Term), n.id)
			}
		}
	}()
	return m
}

func (m *monitor) saw(term uint64, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := m.leaders[term]
	if ids == nil {
		ids = map[string]time.Time{}
		m.leaders[term] = ids
	}
	if _, ok := ids[id]; !ok {
		ids[id] = time.Now()
		if len(ids) > 1 {
			var all []string
			for k := range ids {
				all = append(all, k)
			}
			sort.Strings(all)
			m.conflicts = append(m.conflicts, fmt.Sprintf("term %d led by %v", term, all))
		}
	}
}

func (m *monitor) summary() (terms int, conflicts []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.leaders), append([]string(nil), m.conflicts...)
}
