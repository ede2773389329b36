// Package server wires one Cairn node together: the fsm projection, the
// Raft node, the executor (while leader), the app syncer and the HTTP API.
// cmd/cairn and the end-to-end tests both start nodes through it.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/executor"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/internal/certs"
	"github.com/cairn-dev/cairn/internal/clusterauth"
	"github.com/cairn-dev/cairn/internal/discovery"
	"github.com/cairn-dev/cairn/internal/hostpolicy"
	"github.com/cairn-dev/cairn/pointintime"
	"github.com/cairn-dev/cairn/raftnode"
	"github.com/cairn-dev/cairn/sdk/signing"
	"github.com/cairn-dev/cairn/ui"
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
	// MaxInflightPerFunction and MaxInflightPerApp are the fair shares of
	// MaxInflight (0: half and three quarters of it).
	MaxInflightPerFunction, MaxInflightPerApp int
	// NoCheckpointing keeps every function in classic mode: one app call
	// per step, no async checkpoints (executor.Config.NoCheckpointing).
	NoCheckpointing bool
	Logger          *slog.Logger
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
	// CommitDelay is how long a small Raft entry may wait for more
	// proposals (0: raftnode's default; below 0: never).
	CommitDelay time.Duration
	// DrainTimeout bounds how long Close waits for app calls in flight to
	// be answered and recorded (default 10 s; negative: don't wait).
	DrainTimeout time.Duration
	// SnapshotThreshold and TrailingLogs tune Raft log compaction, and
	// SnapshotInterval how often it is considered (0: the defaults).
	SnapshotThreshold, TrailingLogs uint64
	SnapshotInterval                time.Duration
	// Archive keeps the entries compaction removes (on unless Off).
	Archive raftnode.ArchiveConfig
	// Checkpoints keeps copies of the projection at snapshots.
	Checkpoints raftnode.CheckpointConfig
	// FullScanEvery overrides the executor's safety-net read of the whole
	// queue (tests turn it off to catch a missed due-time hint).
	FullScanEvery time.Duration
	// ClusterSecret authenticates node-to-node HTTP (joins, forwarded
	// answers); every node of a cluster has the same one. Empty: node routes
	// are open, as in dev mode.
	ClusterSecret string
	// TLSCert, TLSKey and TLSCA (PEM files, all three or none) turn on TLS:
	// mutual TLS for Raft and node-to-node HTTP, and HTTPS for clients on
	// the HTTP listener.
	TLSCert, TLSKey, TLSCA string
	// HTTP bounds how long the public listener waits for clients (zero
	// fields: the defaults below).
	HTTP HTTPLimits
	// Limits are the run limits this node records when it leads (nil:
	// fsm.DefaultLimits). Every node should be given the same ones.
	Limits *fsm.Limits
	// MaxEventBytes and MaxRequestBytes bound API inputs (0: the defaults
	// in fsm/limits.go).
	MaxEventBytes   int
	MaxRequestBytes int64
	// Discovery, when set, probes this machine's common ports for SDK
	// endpoints and syncs those that answer (cairn dev only; its Found and
	// Skip are filled in here).
	Discovery *discovery.Config
}

// HTTPLimits bound what a client may hold of the HTTP server: a client
// that sends its request a byte at a time, or keeps idle connections, is
// cut off instead of holding a connection forever.
type HTTPLimits struct {
	ReadHeaderTimeout time.Duration // the request line and headers
	ReadTimeout       time.Duration // the whole request, body included
	WriteTimeout      time.Duration // from the end of the headers to the end of the answer
	IdleTimeout       time.Duration // a kept-alive connection between requests
	MaxHeaderBytes    int
}

// DefaultHTTPLimits fill the zero fields of Config.HTTP. Bodies may be
// 10 MiB: the read timeout leaves a slow link (about 1 Mbit/s) time for
// one. No route answers slowly on purpose (no long polls yet), but answers
// wait for a commit, so writes get minutes too.
var DefaultHTTPLimits = HTTPLimits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       2 * time.Minute,
	WriteTimeout:      5 * time.Minute,
	IdleTimeout:       2 * time.Minute,
	MaxHeaderBytes:    64 << 10,
}

// withDefaults fills the zero fields.
func (l HTTPLimits) withDefaults() HTTPLimits {
	d := DefaultHTTPLimits
	for _, f := range []struct{ v, def *time.Duration }{
		{&l.ReadHeaderTimeout, &d.ReadHeaderTimeout}, {&l.ReadTimeout, &d.ReadTimeout},
		{&l.WriteTimeout, &d.WriteTimeout}, {&l.IdleTimeout, &d.IdleTimeout},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	return l
}

// pastStatesDir, under the data dir, holds the scratch projections of
// past states (package pointintime); it is emptied at start.
const pastStatesDir = "pointintime"

// Server is a running node.
type Server struct {
	cfg    Config
	FSM    *fsm.FSM
	Node   *raftnode.Node
	Exec   *executor.Executor
	Syncer *api.Syncer
	API    *api.Server
	Past   *pointintime.States
	http   *http.Server
	https  bool // the HTTP listener serves TLS
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
	tlsID, err := loadTLS(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.ClusterSecret != "" {
		if err := clusterauth.CheckSecret(cfg.ClusterSecret); err != nil {
			return nil, err
		}
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
		SnapshotThreshold: cfg.SnapshotThreshold, TrailingLogs: cfg.TrailingLogs, SnapshotInterval: cfg.SnapshotInterval,
		ElectionTimeout: cfg.ElectionTimeout, CommitDelay: cfg.CommitDelay, TLS: tlsID, Archive: cfg.Archive, Checkpoints: cfg.Checkpoints,
	}, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	// Past states are rebuilt from Raft's snapshots and the log: the
	// archive of compacted entries, then what Raft still holds.
	past, err := pointintime.Open(pointintime.Config{Dir: filepath.Join(cfg.DataDir, pastStatesDir),
		Log: node.LogSource(), Snapshots: node.Snapshots(), Checkpoints: node, Logger: cfg.Logger})
	if err != nil {
		node.Close()
		f.Close()
		return nil, err
	}
	var handler *api.Server // set below; the executor forwards answers through it
	exec := executor.New(executor.Config{NodeID: cfg.NodeID, CallTimeout: cfg.CallTimeout,
		ServerKind: cfg.ServerKind, Keys: cfg.Keys, AppHosts: cfg.AppHosts,
		MaxInflight: cfg.MaxInflight, MaxInflightPerFunction: cfg.MaxInflightPerFunction, MaxInflightPerApp: cfg.MaxInflightPerApp,
		Logger: cfg.Logger, Clock: cfg.CronClock, CronTick: cfg.CronTick, FullScanEvery: cfg.FullScanEvery,
		MaxBodyBytes: cfg.Limits.AppResponseBytes(), NoCheckpointing: cfg.NoCheckpointing,
		Forward: func(ctx context.Context, rec *fsm.CallFinished) (fsm.Result, error) {
			return handler.ForwardAnswer(ctx, rec)
		},
		// A new leader asks the nodes holding claims what they have in
		// hand, and takes over the calls of a process that is gone.
		Probe: func(ctx context.Context, id string) (executor.Held, error) {
			n, err := f.Node(id)
			if err != nil {
				return executor.Held{}, err
			}
			if n == nil || n.HTTPAddr == "" {
				return executor.Held{}, fmt.Errorf("node %s: no HTTP address recorded", id)
			}
			return handler.PeerHeld(ctx, n.HTTPAddr)
		},
		Revocable: func() bool {
			rec := &fsm.CallClaimed{Revoke: true}
			return fsm.Downgrade(rec, node.ClusterFormat(false)) == nil && rec.Revoke
		},
	}, f, node)
	f.SetNotify(exec.Wake)
	syncer := api.NewSyncer(api.SyncerConfig{Kind: cfg.ServerKind, URLs: cfg.AppURLs, Keys: cfg.Keys,
		AppHosts: cfg.AppHosts, Logger: cfg.Logger})
	listenHost, _, _ := net.SplitHostPort(cfg.HTTPAddr)
	handler = api.New(api.Config{ServerKind: cfg.ServerKind, Logger: cfg.Logger, ListenHost: listenHost,
		Keys: cfg.Keys, EventKeys: cfg.EventKeys, AppHosts: cfg.AppHosts,
		ClusterSecret: cfg.ClusterSecret, TLS: tlsID,
		MaxEventBytes: cfg.MaxEventBytes, MaxRequestBytes: cfg.MaxRequestBytes, PastStates: past}, node, f, exec, syncer)
	// The web UI, on the API's port and behind its auth.
	ui.Mount(handler.Echo(), ui.Config{Auth: handler, FSM: f, Node: node, Syncer: syncer, Logger: cfg.Logger})

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		past.Close()
		node.Close()
		f.Close()
		return nil, fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	lim := cfg.HTTP.withDefaults()
	s := &Server{cfg: cfg, FSM: f, Node: node, Exec: exec, Syncer: syncer, API: handler, Past: past, ln: ln, cancel: cancel,
		log: cfg.Logger, http: &http.Server{Handler: handler.Handler(), ReadHeaderTimeout: lim.ReadHeaderTimeout,
			ReadTimeout: lim.ReadTimeout, WriteTimeout: lim.WriteTimeout, IdleTimeout: lim.IdleTimeout,
			MaxHeaderBytes: lim.MaxHeaderBytes}}
	if tlsID != nil {
		// Clients need no certificate; peers present theirs, which node
		// routes check (api's nodesOnly).
		s.http.TLSConfig, s.https = tlsID.SharedListener(), true
	}
	if s.cfg.HTTPAdvertise == "" {
		s.cfg.HTTPAdvertise = s.Addr()
	}
	s.wg.Add(4)
	go func() {
		defer s.wg.Done()
		if err := s.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
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
		s.keepAnnounced(ctx)
	}()
	go func() {
		defer s.wg.Done()
		if node.WaitLeader(ctx) == nil {
			syncer.Loop(ctx, cfg.SyncInterval)
		}
	}()
	if cfg.Discovery != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if node.WaitLeader(ctx) == nil {
				s.discover(ctx, *cfg.Discovery)
			}
		}()
	}
	return s, nil
}

// discover syncs the SDK endpoints found on this machine: a URL the
// syncer already pings, or a registered app already serves, is not probed
// again; one found is pinged at once (the SDK then registers) and kept, so
// the syncer retries it while it does not answer.
func (s *Server) discover(ctx context.Context, dc discovery.Config) {
	dc.Logger = s.log.With("component", "discovery")
	dc.Skip = func(u string) bool {
		if s.Syncer.Known(u) {
			return true
		}
		apps, err := s.FSM.Apps()
		if err != nil {
			return false
		}
		for _, a := range apps {
			if sameLocalURL(a.URL, u) {
				return true
			}
		}
		return false
	}
	dc.Found = func(ctx context.Context, u string) {
		s.Syncer.Add(u)
		s.Syncer.Ping(ctx, u)
	}
	discovery.Loop(ctx, dc)
}

// sameLocalURL reports whether two app URLs name the same endpoint on this
// machine: an SDK registers under the host it was reached by or was told
// (localhost, 127.0.0.1), with query parameters of its own.
func sameLocalURL(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil {
		return false
	}
	local := func(h string) bool { return h == "localhost" || h == "127.0.0.1" || h == "::1" }
	return ua.Path == ub.Path && ua.Port() == ub.Port() && ua.Hostname() == ub.Hostname() ||
		ua.Path == ub.Path && ua.Port() == ub.Port() && local(ua.Hostname()) && local(ub.Hostname())
}

// Addr is the HTTP address actually bound (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the base URL of the HTTP API.
func (s *Server) URL() string {
	if s.https {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// loadTLS reads the node's certificates, if it has any.
func loadTLS(cfg Config) (*certs.Identity, error) {
	if cfg.TLSCert == "" && cfg.TLSKey == "" && cfg.TLSCA == "" {
		return nil, nil
	}
	return certs.Load(cfg.TLSCert, cfg.TLSKey, cfg.TLSCA)
}

// serve runs the HTTP listener: HTTPS only when the node has a certificate.
// (net/http fills in TLSConfig itself for HTTP/2, so it cannot tell.)
func (s *Server) serve() error {
	if !s.https {
		return s.http.Serve(s.ln)
	}
	return s.http.ServeTLS(s.ln, "", "")
}

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
	if perr := s.Past.Close(); err == nil {
		err = perr
	}
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
//
// Limits are a record of format 2: while a member runs an older release
// (a rolling upgrade) they are not recorded, and Apply enforces none.
func (s *Server) announce(ctx context.Context) {
	if !s.seenAsIs() {
		if _, err := s.Node.Propose(ctx, s.seen()); err != nil {
			s.log.Warn("could not record this leader's addresses", "err", err)
		}
		// Proposing it read the cluster's format without this record (and
		// keeps that reading for a second): read it again, so that records
		// proposed now keep the fields of this release.
		s.Node.ClusterFormat(true)
	}
	s.recordLimits(ctx, true)
}

// recordLimits proposes this leader's run limits if the log holds others,
// once every member reads them (a follower of an older release holds them
// back; the follower loop tries again when it has been upgraded).
func (s *Server) recordLimits(ctx context.Context, warn bool) {
	if have, err := s.FSM.Limits(); err == nil && have == *s.cfg.Limits {
		return
	}
	// Asked of the record, not of FormatVersion: a cluster that reads
	// LimitsSet records it even before every member reads newer formats.
	rec := &fsm.LimitsSet{At: time.Now().UnixMilli(), Limits: *s.cfg.Limits}
	if v := s.Node.ClusterFormat(true); fsm.Downgrade(rec, v) != nil {
		if warn {
			s.log.Warn("not recording run limits yet: a member runs an older release", "cluster_format", v)
		}
		return
	}
	if _, err := s.Node.Propose(ctx, rec); err != nil {
		s.log.Warn("could not record the run limits", "err", err)
	}
}

// seen is this node as the cluster should record it.
func (s *Server) seen() *fsm.NodeSeen {
	return &fsm.NodeSeen{At: time.Now().UnixMilli(), ID: s.cfg.NodeID, RaftAddr: s.Node.RaftAddr(),
		HTTPAddr: s.cfg.HTTPAdvertise, Format: fsm.FormatVersion}
}

// seenAsIs reports whether the cluster records this node as it is.
func (s *Server) seenAsIs() bool {
	have, err := s.FSM.Node(s.cfg.NodeID)
	want := s.seen()
	return err == nil && have != nil && have.HTTPAddr == want.HTTPAddr && have.RaftAddr == want.RaftAddr &&
		have.Format == want.Format
}

// keepAnnounced makes sure the cluster records this node's addresses
// and release when it is a follower: a member that restarts on a new
// release says so, and the leader records what waited for it (the run
// limits) once all have.
func (s *Server) keepAnnounced(ctx context.Context) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		// Wait first: a join just made is being replicated here.
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if s.Node.IsLeader() && s.Node.CaughtUp() {
			s.recordLimits(ctx, false)
		}
		if !s.Node.IsLeader() && !s.seenAsIs() {
			if leader, _ := s.FSM.Node(s.Node.Stats().LeaderID); leader != nil && leader.HTTPAddr != "" {
				me := s.seen()
				err := s.API.Join(ctx, leader.HTTPAddr, api.JoinRequest{ID: me.ID, RaftAddr: me.RaftAddr, HTTPAddr: me.HTTPAddr, Format: me.Format})
				if err != nil {
					s.log.Debug("announcing this follower", "err", err)
				}
			}
		}
	}
}

// join asks a member (any node: it forwards to the leader) to add this node,
// retrying until it succeeds or the server stops.
func (s *Server) join(ctx context.Context) {
	me := api.JoinRequest{ID: s.cfg.NodeID, RaftAddr: s.Node.RaftAddr(), HTTPAddr: s.cfg.HTTPAdvertise, Format: fsm.FormatVersion}
	for attempt := 0; ; attempt++ {
		err := s.API.Join(ctx, s.cfg.Join, me)
		if err == nil {
			s.log.Info("joined the cluster", "via", s.cfg.Join)
			return
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
