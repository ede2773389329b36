package raftnode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-dev/cairn/archive"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/internal/certs"
	"github.com/cairn-dev/cairn/internal/peerdial"
	raftlog "github.com/cairn-dev/cairn/log"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Config describes one node.
type Config struct {
	NodeID   string // unique, stable across restarts
	RaftAddr string // host:port to listen on for Raft traffic
	// Advertise is the address peers use to reach RaftAddr ("" = RaftAddr).
	Advertise string
	DataDir   string // holds raft/ (log), snapshots/
	// Bootstrap makes a brand-new node start a cluster with itself and Peers
	// as voters. Ignored when the node already has state.
	Bootstrap bool
	Peers     []raft.Server
	// Solo says this node will never have peers (cairn dev): it may elect
	// itself with short timeouts. A bootstrap node that others will join
	// must keep cluster timeouts.
	Solo bool
	// ElectionTimeout is how long a follower waits without hearing from the
	// leader before it stands for election (randomised up to twice that).
	// It bounds failover: a dead leader is replaced within about twice this
	// plus one vote round. Zero means DefaultElectionTimeout. Too short for
	// the network or a loaded machine and healthy leaders get deposed.
	ElectionTimeout time.Duration
	// CommitDelay is how long a small entry may wait for more proposals
	// while waiting has been gathering some (groupcommit.go). Zero means
	// DefaultCommitDelay; below zero, entries never wait.
	CommitDelay time.Duration
	// ApplyTimeout bounds how long Propose waits for Raft to take an entry.
	ApplyTimeout time.Duration
	Logger       *slog.Logger
	// SnapshotThreshold and TrailingLogs tune log compaction (defaults
	// 16384 each); tests lower them to force snapshot installs.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// SnapshotInterval is how often raft checks SnapshotThreshold
	// (randomised up to twice that; 0: raft's 120 s).
	SnapshotInterval time.Duration
	// TLS puts Raft traffic under mutual TLS: peers must present a
	// certificate from the cluster CA, and so must this node to them
	// (nil: plain TCP).
	TLS *certs.Identity
	// Archive keeps the entries Raft compacts away (on by default).
	Archive ArchiveConfig
	// Checkpoints keeps copies of the projection taken at snapshots, for
	// point-in-time reads far back (on by default; checkpoints.go).
	Checkpoints CheckpointConfig
	// Transport replaces the TCP transport (nil: TCP on RaftAddr), so that
	// tests can run clusters on raft.NewInmemTransport. RaftAddr must then
	// be the transport's address; AddVoter does not probe new members.
	Transport raft.Transport
}

// Node is a running Raft member with Cairn's FSM.
type Node struct {
	cfg   Config
	raft  *raft.Raft
	store *raftlog.Store
	// arch keeps compacted entries (nil: archive off); applier is the FSM
	// adapter, which knows the highest index committed in this log.
	arch    *archive.Archive
	applier *raftFSM
	snaps   raft.SnapshotStore // raft's own file store, unwrapped
	trans   raft.Transport
	// stream is the transport's stream layer; membership changes dial
	// through it to check that a new member is reachable.
	stream *stream
	fsm    *fsm.FSM
	log    *slog.Logger

	proposals chan *proposal
	group     groupCommit // batchLoop's alone
	holds     atomic.Uint64
	// caughtUp is the term in which this node, as leader, passed its
	// barrier: its projection then holds every entry of earlier terms.
	caughtUp  atomic.Uint64
	format    formatCache
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var (
	mRecords = promauto.NewCounter(prometheus.CounterOpts{
		Name: "cairn_raft_records_proposed_total", Help: "Records proposed through this node.",
	})
	mEntries = promauto.NewCounter(prometheus.CounterOpts{
		Name: "cairn_raft_entries_proposed_total", Help: "Raft entries proposed (each carries a batch of records).",
	})
	mHolds = promauto.NewCounter(prometheus.CounterOpts{
		Name: "cairn_raft_commit_holds_total", Help: "Small entries that waited for more proposals to share their commit (--commit-delay).",
	})
	mCommit = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "cairn_raft_commit_seconds", Help: "From handing an entry to Raft until it is applied.",
		Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
	})
)

// Batching limits: records per Raft entry, and entries in flight at once.
// While maxInflight entries are in flight, new proposals pile up and go out
// together in the next one.
const (
	maxBatchRecords = 1024
	maxInflight     = 4
)

// DefaultElectionTimeout suits nodes on one LAN: half of hashicorp/raft's 1 s
// default, which is tuned for WANs, so failover stays under two seconds.
const DefaultElectionTimeout = 500 * time.Millisecond

// Open starts a node on an already opened FSM.
func Open(cfg Config, f *fsm.FSM) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	if cfg.CommitDelay == 0 {
		cfg.CommitDelay = DefaultCommitDelay
	}
	if cfg.Advertise == "" {
		cfg.Advertise = cfg.RaftAddr
	}
	lg := cfg.Logger.With("component", "raft")
	arch, err := openArchive(cfg, cfg.Logger)
	if err != nil {
		return nil, err
	}
	cps, err := openCheckpoints(filepath.Join(cfg.DataDir, checkpointsDirName), cfg.Checkpoints, lg)
	if err != nil {
		return nil, err
	}
	applier := &raftFSM{f: f, checkpoints: cps}
	applied, _ := f.Applied()
	applier.committed.Store(applied)
	opts := raftlog.Options{Logger: lg}
	if arch != nil {
		opts.Archive, opts.Committed = arch, applier.committed.Load
	}
	store, err := raftlog.Open(filepath.Join(cfg.DataDir, "raft"), opts)
	if err != nil {
		return nil, err
	}
	applier.logs = store
	applier.onSnapshot = noteSnapshot(store, applier, lg)
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: &slogWriter{lg}})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.DataDir, "snapshots"), 2, hlog)
	if err != nil {
		store.Close()
		return nil, err
	}
	var (
		trans  raft.Transport
		stream *stream
	)
	if cfg.Transport != nil {
		trans = cfg.Transport
	} else {
		if stream, err = listen(cfg); err != nil {
			store.Close()
			return nil, err
		}
		trans = noHeartbeatFastPath{raft.NewNetworkTransportWithLogger(stream, 4, 10*time.Second, hlog)}
	}
	closeTrans := func() {
		if c, ok := trans.(raft.WithClose); ok {
			c.Close()
		}
	}
	if err := catchUp(f, snaps, store, lg); err != nil {
		store.Close()
		closeTrans()
		return nil, err
	}
	if metas, err := snaps.List(); err == nil && len(metas) > 0 {
		applier.raise(metas[0].Index) // raft starts applying after it
		// A crash may have come between storing a snapshot from the
		// leader and archiving what it covers.
		applier.onSnapshot(metas[0].Index, metas[0].Term)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.BatchApplyCh = true
	// The projection lives in Pebble and survives restarts; raft must not
	// wipe it with the last snapshot. Entries it re-applies are skipped by
	// index inside the FSM; a projection behind that snapshot was restored
	// from it above (catchUp).
	rc.NoSnapshotRestoreOnStart = true
	rc.SnapshotThreshold, rc.TrailingLogs = 16384, 16384
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	timeout := cfg.ElectionTimeout
	if timeout <= 0 {
		timeout = DefaultElectionTimeout
	}
	if isSingle(cfg) {
		// A lone voter need not wait out heartbeat timeouts to elect itself.
		timeout = 200 * time.Millisecond
	}
	// The leader sends heartbeats every tenth of HeartbeatTimeout and steps
	// down when a quorum has been silent for LeaderLeaseTimeout, which must
	// not exceed it.
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = timeout, timeout, timeout/2
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(store, store, snaps)
		if err != nil {
			store.Close()
			closeTrans()
			return nil, err
		}
		if !has {
			servers := append([]raft.Server{{ID: rc.LocalID, Address: trans.LocalAddr()}}, cfg.Peers...)
			if err := raft.BootstrapCluster(rc, store, store, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
				store.Close()
				closeTrans()
				return nil, fmt.Errorf("raftnode: bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, applier, store, store, snapshotStore{snaps, applier}, trans)
	if err != nil {
		store.Close()
		closeTrans()
		return nil, err
	}
	n := &Node{cfg: cfg, raft: r, store: store, arch: arch, applier: applier, snaps: snaps, trans: trans, stream: stream, fsm: f, log: lg,
		proposals: make(chan *proposal, 4096), stop: make(chan struct{}), group: groupCommit{delay: cfg.CommitDelay}}
	n.wg.Add(1)
	go n.batchLoop()
	return n, nil
}

// listen opens the TCP stream layer for Raft on cfg.RaftAddr.
func listen(cfg Config) (*stream, error) {
	adv, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
	if err != nil {
		return nil, fmt.Errorf("raftnode: advertise address: %w", err)
	}
	if adv.IP == nil || adv.IP.IsUnspecified() || adv.Port == 0 {
		return nil, fmt.Errorf("raftnode: %q is not an address peers can dial: advertise a specific IP and port", cfg.Advertise)
	}
	ln, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("raftnode: listen %s: %w", cfg.RaftAddr, err)
	}
	listenHost, _, _ := net.SplitHostPort(cfg.RaftAddr)
	return newStream(ln, adv, peerdial.New(listenHost, 10*time.Second), cfg.TLS), nil
}

func isSingle(cfg Config) bool { return cfg.Solo && cfg.Bootstrap && len(cfg.Peers) == 0 }

// proposal is one caller's records waiting to be committed, encoded
// already: a record that cannot be encoded fails its caller in Propose and
// never reaches a batch, where it would fail every caller in it.
type proposal struct {
	recs [][]byte
	done chan proposeResult
}

func newProposal(recs []fsm.Record) (*proposal, error) {
	p := &proposal{recs: make([][]byte, len(recs)), done: make(chan proposeResult, 1)}
	for i, r := range recs {
		var err error
		if p.recs[i], err = fsm.EncodeRecord(r); err != nil {
			return nil, err
		}
	}
	return p, nil
}

type proposeResult struct {
	res []fsm.Result
	err error
}

// Propose commits records and returns their results, in order. All records
// of one call land in the same Raft entry, possibly with other callers'.
func (n *Node) Propose(ctx context.Context, recs ...fsm.Record) ([]fsm.Result, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	if n.raft.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	if err := n.downgrade(recs); err != nil {
		return nil, err // nothing was written
	}
	p, err := newProposal(recs)
	if err != nil {
		return nil, err
	}
	select {
	case n.proposals <- p:
	case <-ctx.Done():
		return nil, ctx.Err() // never handed over: nothing was written
	case <-n.stop:
		return nil, ErrShutdown
	}
	select {
	case r := <-p.done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrOutcomeUnknown, ctx.Err())
	}
}

// batchLoop turns queued proposals into Raft entries, one goroutine so that
// entries are appended in the order proposals arrived.
func (n *Node) batchLoop() {
	defer n.wg.Done()
	inflight := make(chan struct{}, maxInflight)
	holdTimer := time.NewTimer(time.Hour)
	holdTimer.Stop()
	for {
		// Take a slot first: while Raft has maxInflight entries in flight,
		// proposals wait in the queue, and all of them join the next entry.
		select {
		case inflight <- struct{}{}:
		case <-n.stop:
			return
		}
		var first *proposal
		select {
		case first = <-n.proposals:
		case <-n.stop:
			return
		}
		batch := []*proposal{first}
		count := len(first.recs)
	drain:
		for count < maxBatchRecords {
			select {
			case p := <-n.proposals:
				batch = append(batch, p)
				count += len(p.recs)
			default:
				break drain
			}
		}
		if n.group.hold(count) {
			n.holds.Add(1)
			mHolds.Inc()
			gathered := 0
			holdTimer.Reset(n.group.delay)
		hold:
			for count < holdBelow {
				select {
				case p := <-n.proposals:
					batch = append(batch, p)
					count += len(p.recs)
					gathered++
				case <-holdTimer.C:
					break hold
				case <-n.stop:
					break hold
				}
			}
			holdTimer.Stop()
			n.group.held(gathered)
		}
		recs := make([][]byte, 0, count)
		for _, p := range batch {
			recs = append(recs, p.recs...)
		}
		data := fsm.JoinEntry(recs...)
		if n.ClusterFormat(false) >= fsm.EntryCompressionFormat {
			data = fsm.CompressEntry(data)
		}
		mEntries.Inc()
		mRecords.Add(float64(len(recs)))
		start := time.Now()
		fut := n.raft.Apply(data, n.cfg.ApplyTimeout)
		go func() {
			defer func() { <-inflight }()
			err := mapErr(fut.Error())
			mCommit.Observe(time.Since(start).Seconds())
			var results []fsm.Result
			if err == nil {
				results, _ = fut.Response().([]fsm.Result)
				if len(results) != len(recs) {
					err = fmt.Errorf("%w: entry %d applied without results", ErrOutcomeUnknown, fut.Index())
				}
			}
			off := 0
			for _, p := range batch {
				r := proposeResult{err: err}
				if err == nil {
					r.res = results[off : off+len(p.recs)]
				}
				off += len(p.recs)
				p.done <- r
			}
		}()
	}
}

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return ErrNotLeader
	default: // leadership lost, timeout, shutdown: the entry may or may not commit
		return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	}
}

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// CaughtUp reports whether this node leads and its projection has applied
// every entry committed before its term (RunWhileLeader's barrier passed):
// then what the projection lacks was never committed.
func (n *Node) CaughtUp() bool {
	return n.IsLeader() && n.caughtUp.Load() == n.raft.CurrentTerm()
}

// Leader returns the leader's Raft address and id ("" if unknown).
func (n *Node) Leader() (addr, id string) {
	a, i := n.raft.LeaderWithID()
	return string(a), string(i)
}

// RunWhileLeader calls fn each time this node becomes leader, after a
// barrier (so every earlier entry is applied), with a context cancelled when
// leadership is lost or ctx ends. It blocks until ctx ends.
func (n *Node) RunWhileLeader(ctx context.Context, fn func(ctx context.Context)) {
	var current *leaderTerm
	defer func() { current.stop() }()
	leaderCh := n.raft.LeaderCh()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for {
		var isLeader bool
		select {
		case <-ctx.Done():
			return
		case isLeader = <-leaderCh:
		case <-check.C:
			// LeaderCh may drop transitions; reconcile with the real state.
			isLeader = n.IsLeader()
			if isLeader == (current != nil) {
				continue
			}
		}
		current.stop()
		current = nil
		if !isLeader {
			continue
		}
		term := n.raft.CurrentTerm()
		if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
			n.log.Warn("barrier failed; waiting for next leadership change", "err", err)
			continue
		}
		n.caughtUp.Store(term)
		current = startTerm(ctx, fn)
	}
}

// leaderTerm is fn running for one term of leadership.
type leaderTerm struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startTerm(ctx context.Context, fn func(context.Context)) *leaderTerm {
	tctx, cancel := context.WithCancel(ctx)
	t := &leaderTerm{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		fn(tctx)
	}()
	return t
}

// stop cancels the term and waits for fn to return; nil-safe.
func (t *leaderTerm) stop() {
	if t == nil {
		return
	}
	t.cancel()
	<-t.done
}

// WaitLeader waits until some node is leader (this one for a single node).
func (n *Node) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if addr, _ := n.Leader(); addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Stats describes the node for status pages and tests.
type Stats struct {
	NodeID       string `json:"node_id"`
	State        string `json:"state"`
	Leader       string `json:"leader"`
	LeaderID     string `json:"leader_id"`
	Term         string `json:"term"`
	CommitIndex  string `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastLogIndex string `json:"last_log_index"`
	// LogSyncs counts the synced writes of entries to the log since the
	// node started: one fsync each, for one or more entries.
	LogSyncs uint64 `json:"log_syncs"`
	// CommitHolds counts the entries that waited for more proposals
	// (groupcommit.go) since the node started.
	CommitHolds uint64 `json:"commit_holds"`
}

// Stats returns the node's Raft state.
func (n *Node) Stats() Stats {
	s := n.raft.Stats()
	applied, _ := n.fsm.Applied()
	addr, id := n.Leader()
	return Stats{NodeID: n.cfg.NodeID, State: n.raft.State().String(), Leader: addr, LeaderID: id,
		Term: s["term"], CommitIndex: s["commit_index"], AppliedIndex: applied, LastLogIndex: s["last_log_index"],
		LogSyncs: n.store.Syncs(), CommitHolds: n.holds.Load()}
}

// Close stops Raft and releases the log store. The FSM stays open; its owner
// closes it.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		close(n.stop)
		n.wg.Wait()
		err = n.raft.Shutdown().Error()
		if c, ok := n.trans.(raft.WithClose); ok {
			c.Close()
		}
		if cerr := n.store.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// slogWriter forwards hclog lines to slog.
type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "[ERROR]"):
			w.l.Error(line)
		case firstElection(line):
			w.l.Info("raft: no leader yet, standing for election")
		default:
			w.l.Warn(line)
		}
	}
	return len(p), nil
}

// firstElection reports whether an hclog line is hashicorp/raft starting
// an election with no leader ever heard of since this node started
// (last-leader-id empty). Every node starts as a follower and stands for
// election only once a heartbeat timeout passes without a leader, so a
// node's first election, a lone voter's on every start, is no warning;
// raft logs it at WARN all the same. An election after a leader was lost
// names that leader and stays a warning.
func firstElection(line string) bool {
	if !strings.Contains(line, "heartbeat timeout reached, starting election") {
		return false
	}
	_, id, ok := strings.Cut(line, "last-leader-id=")
	return ok && (id == "" || strings.HasPrefix(id, " ") || strings.HasPrefix(id, `""`))
}

var _ io.Writer = (*slogWriter)(nil)

// Member is one server of the Raft configuration.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
}

// Members returns the current Raft configuration.
func (n *Node) Members() ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var out []Member
	for _, s := range f.Configuration().Servers {
		out = append(out, Member{ID: string(s.ID), RaftAddr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// probeTimeout bounds AddVoter's check that a new member answers.
const probeTimeout = 3 * time.Second

// AddVoter adds (or re-addresses) a voting member. Leader only. It first
// dials raftAddr as Raft would (a TLS handshake included, when configured)
// and refuses with ErrUnreachable, writing nothing, if that fails: a voter
// nobody can reach counts toward the quorum all the same, and a lone node
// that took one would lose its majority for good.
func (n *Node) AddVoter(id, raftAddr string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if n.stream != nil { // an injected transport (tests) is not probed
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		conn, err := n.stream.dial(ctx, raftAddr)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUnreachable, err)
		}
		conn.Close()
	}
	return mapErr(n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, n.cfg.ApplyTimeout).Error())
}

// RemoveServer removes a member. Leader only.
func (n *Node) RemoveServer(id string) error {
	return mapErr(n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error())
}

// ID is this node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// RaftAddr is the address peers reach this node at.
func (n *Node) RaftAddr() string { return n.cfg.Advertise }

// HandOver asks Raft to make another voter leader now, so that a leader
// stopping on purpose is replaced without waiting out an election timeout.
// It is a no-op on a follower or a node without peers.
func (n *Node) HandOver() error {
	if !n.IsLeader() {
		return nil
	}
	members, err := n.Members()
	if err != nil || len(members) < 2 {
		return err
	}
	return n.raft.LeadershipTransfer().Error()
}

// Snapshot takes a Raft snapshot now (compacting the log behind it).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// noHeartbeatFastPath turns off the transport's heartbeat fast path, so
// every AppendEntries, heartbeats included, is handled by Raft's main loop.
// In hashicorp/raft v1.8.0 the fast path updates the term and follower
// state outside that loop; a leader paused and resumed (SIGSTOP, a long GC
// or VM stall) can then stamp its own pending entries with the new leader's
// term, and replicas diverge (hashicorp/raft#695, found by our chaos
// harness). The cost is heartbeats queued behind log replication.
type noHeartbeatFastPath struct{ *raft.NetworkTransport }

func (noHeartbeatFastPath) SetHeartbeatHandler(func(raft.RPC)) {}
