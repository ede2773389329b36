package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/cairn-dev/cairn/executor"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/internal/certs"
	"github.com/cairn-dev/cairn/internal/hostpolicy"
	"github.com/cairn-dev/cairn/sdk/signing"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config tunes the API.
type Config struct {
	// ServerKind is what we tell SDKs we are ("dev" for cairn dev, "cloud"
	// for cairn start): they refuse to register with a kind they don't expect.
	ServerKind      string
	MaxRequestBytes int64 // largest request body (default fsm.DefaultRequestBytes)
	MaxEventBytes   int   // largest single event (default fsm.DefaultEventBytes)
	// ListenHost is the host this node serves HTTP on; requests forwarded
	// to the leader are sent from it (see package peerdial).
	ListenHost string
	Logger     *slog.Logger
	// Keys is the signing key (and fallback); with none, every door is
	// open (dev mode). EventKeys are the keys /e/:key accepts.
	Keys      signing.Keys
	EventKeys []string
	// AppHosts limits where apps may live (nil: anywhere).
	AppHosts *hostpolicy.Policy
	// ClusterSecret is what nodes prove they know on node-to-node requests
	// (package clusterauth; see nodeauth.go). Empty: node-only routes are
	// open to any caller, as in dev mode.
	ClusterSecret string
	// TLS is this node's identity for mutual TLS with its peers: requests to
	// them go over https with its certificate, and node-only routes want a
	// caller's certificate from the cluster CA (nil: plain HTTP).
	TLS *certs.Identity
	// PastStates answers reads at a past log index (nil: they are
	// refused with 501).
	PastStates PastStates
}

// Dispatcher is the local executor, as the API sees it: records proposed
// here lease the calls they make due to it, so a new run's first call goes
// out without another round of the log.
type Dispatcher interface {
	LeaseNext() *fsm.LeaseNext
	Adopt(calls []fsm.Call)
	// Held is what the executor has in hand, for a leader that finds
	// calls claimed by this node (GET /v1/internal/calls).
	Held() executor.Held
}

// Server holds the API's dependencies.
type Server struct {
	cfg    Config
	node   Node
	fsm    Projection
	exec   Dispatcher
	syncer *Syncer
	log    *slog.Logger
	echo   *echo.Echo
	// toLeader carries requests forwarded to the leader and other
	// node-to-node requests (peers.go).
	toLeader http.RoundTripper
}

// New builds the HTTP handler.
func New(cfg Config, node Node, f Projection, exec Dispatcher, syncer *Syncer) *Server {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = fsm.DefaultRequestBytes
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = fsm.DefaultEventBytes
	}
	if cfg.ServerKind == "" {
		cfg.ServerKind = "dev"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, node: node, fsm: f, exec: exec, syncer: syncer, log: cfg.Logger.With("component", "api"),
		toLeader: peerTransport(cfg)}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler
	e.Use(s.recoverer)
	e.Use(s.nodesOnly)
	e.Use(checkActor)
	e.Use(s.forward)

	// SDK-facing: event API and registration.
	e.POST("/e/:key", s.postEvents, s.needEventKey)
	e.POST("/fn/register", s.register, s.needSigningKey)

	// Cluster membership and node-to-node traffic.
	e.POST(pathJoin, s.clusterJoin, s.needNodeOrSigningKey)
	e.POST(pathRemove, s.clusterRemove, s.needNodeOrSigningKey)
	e.POST(pathAnswers, s.postAnswers, s.needNode)
	e.GET(pathCalls, s.getCalls, s.needNode)

	// Cairn's own API.
	v1 := e.Group("/v1", s.needSigningKey)
	v1.GET("/apps", s.listApps)
	v1.DELETE("/apps", s.removeApp)
	v1.POST("/apps/sync", s.resync)
	v1.POST("/events", s.postEvents)
	v1.GET("/events", s.listEvents)
	v1.GET("/events/:id", s.getEvent)
	v1.POST("/events/:id/replay", s.replayEvent)
	v1.GET("/events/:id/runs", s.eventRuns)
	v1.GET("/runs", s.listRuns)
	v1.GET("/runs/:id", s.getRun)
	v1.GET("/runs/:id/history", s.runHistory)
	v1.POST("/runs/:id/cancel", s.cancelRun)
	v1.POST("/runs/:id/rerun", s.rerunRun)
	v1.POST("/replays", s.startReplay)
	v1.GET("/replays/:id", s.getReplay)
	v1.POST("/replays/:id/cancel", s.cancelReplay)
	v1.DELETE("/replays/:id", s.cancelReplay)
	v1.POST("/signals", s.postSignal)
	v1.POST("/checkpoint/:id/async", s.checkpointAsync)
	v1.GET("/functions", s.listFunctions)
	v1.POST("/functions/:id/cancel", s.cancelFunctionRuns)
	v1.GET("/log", s.listLog)
	v1.GET("/state", s.getState)
	v1.GET("/status", s.status)
	v1.GET("/cluster", s.clusterStatus)
	// Durable endpoints (checkpoint.go): the SDK's sync checkpoint API and
	// the state it fetches on re-entry; the output is opened by its token.
	v1.POST("/checkpoint", s.postCheckpoint)
	v1.POST("/checkpoint/:id/steps", s.postCheckpointSteps)
	v1.POST("/realtime/publish/tee", s.postTee)
	e.GET("/v1/http/runs/:id/output", s.getRunOutput)
	e.GET("/v1/realtime/sse", s.getRealtimeSSE)
	v0 := e.Group("/v0", s.needSigningKey)
	v0.GET("/runs/:id/batch", s.runBatch)
	v0.GET("/runs/:id/actions", s.runActions)
	e.GET("/health", s.health)
	e.GET("/metrics", echo.WrapHandler(promhttp.Handler()))
	s.echo = e
	if s.secured() {
		// The names actors give the credentials (auth.go), so that an
		// operator can tell which key a record names.
		names := []any{"signing_key", signingKeyName(cfg.Keys.Primary)}
		if !cfg.Keys.Fallback.IsZero() {
			names = append(names, "fallback", signingKeyName(cfg.Keys.Fallback))
		}
		for i, k := range cfg.EventKeys {
			names = append(names, fmt.Sprintf("event_key_%d", i+1), eventKeyName(k))
		}
		s.log.Info("credentials, as records name them", names...)
	}
	return s
}

// Handler returns the root HTTP handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Echo is the router, for a package that serves more than the API on the
// same port (the web UI: package ui adds its pages to it).
func (s *Server) Echo() *echo.Echo { return s.echo }

// recoverer turns a panic in a handler into a 500 in the one error shape.
func (s *Server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("handler panic", "path", c.Path(), "panic", r)
				err = errf(http.StatusInternalServerError, "internal", "internal error")
			}
		}()
		return next(c)
	}
}

// readBody reads a request body up to the size limit, with a clear error.
func (s *Server) readBody(c echo.Context) ([]byte, error) {
	return readBodyUpTo(c, s.cfg.MaxRequestBytes)
}

func readBodyUpTo(c echo.Context, limit int64) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > limit {
		return nil, errf(http.StatusRequestEntityTooLarge, "payload_too_large",
			"request body is %d bytes; the limit is %d", r.ContentLength, limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errf(http.StatusRequestEntityTooLarge, "payload_too_large",
			"request body is larger than the limit of %d bytes", limit)
	}
	if err != nil {
		return nil, errf(http.StatusBadRequest, "bad_request", "reading request body: %v", err)
	}
	return b, nil
}

// propose commits records with the request's context.
func (s *Server) propose(c echo.Context, recs ...fsm.Record) ([]fsm.Result, error) {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 30*time.Second)
	defer cancel()
	return s.node.Propose(ctx, recs...)
}

func (s *Server) health(c echo.Context) error {
	st := s.node.Stats()
	ok := st.Leader != ""
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	return c.JSON(code, map[string]any{"ok": ok, "state": st.State, "leader": st.Leader})
}

// status reports Raft state and the digest chain of applied entries. With
// ?digest=true it also hashes the whole projection (a full scan: costly on
// big data dirs, meant for comparing nodes and replays).
func (s *Server) status(c echo.Context) error {
	_, chain := s.fsm.Applied()
	out := map[string]any{"raft": s.node.Stats(), "log_digest": hex16(chain), "archive": s.node.ArchiveStatus()}
	if c.QueryParam("digest") == "true" {
		digest, err := s.fsm.StateDigest()
		if err != nil {
			return err
		}
		out["state_digest"] = digest
	}
	return c.JSON(http.StatusOK, out)
}

func hex16(v uint64) string { return fmt.Sprintf("%016x", v) }
