// Package server wires one Cairn node together: the fsm projection, the
// Raft node, the executor (while leader), the app syncer and the HTTP API.
// cmd/cairn and the end-to-end tests both start nodes through it.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/executor"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/internal/hostpolicy"
	"github.com/cairn-dev/cairn/internal/signing"
	"github.com/cairn-dev/cairn/raftnode"
	"github.com/hashicorp/raft"
)

// Config is everything a node needs.
type Config struct {
	NodeID   string
	DataDir  string
	HTTPAddr string // e.g. "127.0.0.1:8288"
	RaftAddr string // e.g. "127.0.0.1:8289"
	// RaftAdvertise is the Raft address peers dial (default: RaftAddr), for
	// nodes behind NAT or a proxy.
	RaftAdvertise string
	Bootstrap     bool
	Peers         []raft.Server
	// ServerKind is "dev" for cairn dev, "cloud" for cairn start.
	ServerKind string
	// Keys signs requests to apps and guards the API; EventKeys guard the
	// event API. With no signing key every door is open (dev mode).
	Keys      signing.Keys
	EventKeys []string
	// AppHosts limits where apps may live (nil: anywhere).
	AppHosts     *hostpolicy.Policy
	AppURLs      []string      // apps to sync by PUT-ping
	SyncInterval time.Duration // re-ping unsynced apps this often
	CallTimeout  time.Duration
	MaxInflight  int
	Logger       *slog.Logger
	// CronClock and CronTick let tests drive cron schedules (default:
	// time.Now, checked every second).
	CronClock func() time.Time
	CronTick  time.Duration
	// HTTPAdvertise is the HTTP address other nodes forward to (default:
	// the bound address). Join is the HTTP address of a member to join.
	HTTPAdvertise string
	Join          string
	// ElectionTimeout tunes Raft failover (0: raftnode's default).
	ElectionTimeout time.Duration
	// DrainTimeout bounds how long Close waits for app calls in flight to
	// be answered and recorded (default 10 s; negative: don't wait).
	DrainTimeout time.Duration
	// SnapshotThreshold and TrailingLogs tune Raft log compaction.
	SnapshotThreshold, TrailingLogs uint64
	// FullScanEvery overrides the executor's safety-net read of the whole
	// queue (tests turn it off to catch a missed due-time hint).
	FullScanEvery time.Duration
	// Limits are the run limits this node records when it leads (nil:
	// fsm.DefaultLimits). Every node should be given the same ones.
	Limits *fsm.Limits
	// MaxEventBytes and MaxRequestBytes bound API inputs (0: the defaults
	// in fsm/limits.go).
	MaxEventBytes   int
	MaxRequestBytes int64
}

// Server is a running node.
type Server struct {
	cfg    Config
	FSM    *fsm.FSM
	Node   *raftnode.Node
	Exec   *executor.Executor
	Syncer *api.Syncer
	http   *http.Server
	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    *slog.Logger
}

// Start opens the data dir and starts serving. It returns once the HTTP
// listener is bound; use WaitReady to wait for a leader.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 5 * time.Second
	}
	if cfg.Limits == nil {
		l := fsm.DefaultLimits
		cfg.Limits = &l
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	f, err := fsm.Open(filepath.Join(cfg.DataDir, "fsm"), fsm.Options{Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	node, err := raftnode.Open(raftnode.Config{
		NodeID: cfg.NodeID, RaftAddr: cfg.RaftAddr, Advertise: cfg.RaftAdvertise, DataDir: cfg.DataDir,
		Bootstrap: cfg.Bootstrap, Peers: cfg.Peers, Logger: cfg.Logger, Solo: cfg.ServerKind == "dev",
		SnapshotThreshold: cfg.SnapshotThreshold, TrailingLogs: cfg.TrailingLogs, ElectionTimeout: cfg.ElectionTimeout,
	}, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	var handler *api.Server // set below; the executor forwards answers through it
	exec := executor.New(executor.Config{NodeID: cfg.NodeID, CallTimeout: cfg.CallTimeout,
		ServerKind: cfg.ServerKind, Keys: cfg.Keys, AppHosts: cfg.AppHosts,
		MaxInflight: cfg.MaxInflight, Logger: cfg.Logger, Clock: cfg.CronClock, CronTick: cfg.CronTick, FullScanEvery: cfg.FullScanEvery,
		MaxBodyBytes: cfg.Limits.AppResponseBytes(),
		Forward: func(ctx context.Context, rec *fsm.CallFinished) (fsm.Result, error) {
			return handler.ForwardAnswer(ctx, rec)
		},
	}, f, node)
	f.SetNotify(exec.Wake)
	syncer := api.NewSyncer(api.SyncerConfig{Kind: cfg.ServerKind, URLs: cfg.AppURLs, Keys: cfg.Keys,
		AppHosts: cfg.AppHosts, Logger: cfg.Logger})
	listenHost, _, _ := net.SplitHostPort(cfg.HTTPAddr)
	handler = api.New(api.Config{ServerKind: cfg.ServerKind, Logger: cfg.Logger, ListenHost: listenHost,
		Keys: cfg.Keys, EventKeys: cfg.EventKeys, AppHosts: cfg.AppHosts,
		MaxEventBytes: cfg.MaxEventBytes, MaxRequestBytes: cfg.MaxRequestBytes}, node, f, exec, syncer)

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		node.Close()
		f.Close()
		return nil, fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, FSM: f, Node: node, Exec: exec, Syncer: syncer, ln: ln, cancel: cancel,
		log: cfg.Logger, http: &http.Server{Handler: handler.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	if s.cfg.HTTPAdvertise == "" {
		s.cfg.HTTPAdvertise = s.Addr()
	}
	s.wg.Add(4)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		node.RunWhileLeader(ctx, func(ctx context.Context) {
			s.announce(ctx)
			exec.Run(ctx)
		})
	}()
	go func() {
		defer s.wg.Done()
		if cfg.Join != "" {
			s.join(ctx)
		}
	}()
	go func() {
		defer s.wg.Done()
		if node.WaitLeader(ctx) == nil {
			syncer.Loop(ctx, cfg.SyncInterval)
		}
	}()
	return s, nil
}

// Addr is the HTTP address actually bound (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the base URL of the HTTP API.
func (s *Server) URL() string { return "http://" + s.Addr() }

// WaitReady waits until the cluster has a leader.
func (s *Server) WaitReady(ctx context.Context) error { return s.Node.WaitLeader(ctx) }

// Close shuts down gracefully: stop taking requests, let the app calls in
// flight finish and record their answers (up to DrainTimeout; calls still
// out then are re-sent by the next leader after their lease), hand
// leadership to a peer, stop Raft, close Pebble.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	drain := s.cfg.DrainTimeout
	if drain == 0 {
		drain = 10 * time.Second
	}
	dctx, dcancel := context.WithTimeout(context.Background(), max(drain, 0))
	if left := s.Exec.Drain(dctx); left > 0 {
		s.log.Warn("stopping with app calls in flight; they will be re-sent after their lease", "calls", left)
	}
	dcancel()
	if herr := s.Node.HandOver(); herr != nil {
		s.log.Warn("could not hand leadership over; the others elect a leader after a timeout", "err", herr)
	}
	s.cancel()
	s.wg.Wait()
	s.Exec.Close()
	if nerr := s.Node.Close(); err == nil {
		err = nerr
	}
	if ferr := s.FSM.Close(); err == nil {
		err = ferr
	}
	return err
}

// announce records, when this node becomes leader, its addresses (so that
// followers can forward requests to it) and its run limits, if they are
// not the ones recorded already.
func (s *Server) announce(ctx context.Context) {
	now := time.Now().UnixMilli()
	var recs []fsm.Record
	if have, err := s.FSM.Node(s.cfg.NodeID); err != nil || have == nil ||
		have.HTTPAddr != s.cfg.HTTPAdvertise || have.RaftAddr != s.Node.RaftAddr() {
		recs = append(recs, &fsm.NodeSeen{At: now, ID: s.cfg.NodeID, RaftAddr: s.Node.RaftAddr(), HTTPAddr: s.cfg.HTTPAdvertise})
	}
	if have, err := s.FSM.Limits(); err != nil || have != *s.cfg.Limits {
		recs = append(recs, &fsm.LimitsSet{At: now, Limits: *s.cfg.Limits})
	}
	if _, err := s.Node.Propose(ctx, recs...); err != nil {
		s.log.Warn("could not record this leader's addresses and limits", "err", err)
	}
}

// join asks a member (any node: it forwards to the leader) to add this node,
// retrying until it succeeds or the server stops.
func (s *Server) join(ctx context.Context) {
	body, _ := json.Marshal(map[string]string{"id": s.cfg.NodeID, "raft_addr": s.Node.RaftAddr(), "http_addr": s.cfg.HTTPAdvertise})
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.cfg.Join+"/v1/cluster/join", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.log.Info("joined the cluster", "via", s.cfg.Join)
				return
			}
			err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		}
		if attempt%10 == 0 {
			s.log.Warn("joining the cluster", "via", s.cfg.Join, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
