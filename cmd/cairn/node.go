package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-dev/cairn/internal/discovery"
	"github.com/cairn-dev/cairn/internal/hostpolicy"
	"github.com/cairn-dev/cairn/raftnode"
	"github.com/cairn-dev/cairn/sdk/signing"
	"github.com/cairn-dev/cairn/server"
	"github.com/hashicorp/raft"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

// env returns the environment variable's value or def.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envInt64(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// Environment variables that "cairn start" and the client commands share.
const (
	envTLSCert       = "CAIRN_TLS_CERT"
	envTLSKey        = "CAIRN_TLS_KEY"
	envTLSCA         = "CAIRN_TLS_CA"
	envClusterSecret = "CAIRN_CLUSTER_SECRET"
)

// clusterSecret decides a node's cluster secret. A node that joins a
// cluster or is bootstrapped with peers needs the cluster's. A lone node
// needs none: it gets a random one that nobody knows, so no node can join
// it or send it answers (restart it with the cluster's secret to grow it).
func clusterSecret(given string, clustered bool) (string, error) {
	if given != "" {
		return given, nil
	}
	if clustered {
		return "", errors.New("--cluster-secret (or " + envClusterSecret + ") is required with --join or --peers: " +
			"give every node of the cluster the same one, e.g. from openssl rand -hex 32")
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// runNode implements "cairn dev" and "cairn start".
func runNode(cmd string, args []string) error {
	dev := cmd == "dev"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	defDir, defPort := "./data", "8288"
	if dev {
		defDir = ".cairn"
	}
	var urls, peers, appHosts stringList
	var (
		port      = fs.String("port", env("CAIRN_PORT", defPort), "HTTP port for the API, events and SDK registration (env CAIRN_PORT)")
		host      = fs.String("host", env("CAIRN_HOST", "127.0.0.1"), "interface to listen on (env CAIRN_HOST)")
		dataDir   = fs.String("data-dir", env("CAIRN_DATA_DIR", defDir), "where the log and projection live (env CAIRN_DATA_DIR)")
		nodeID    = fs.String("node-id", env("CAIRN_NODE_ID", "node1"), "this node's stable id (env CAIRN_NODE_ID)")
		raftAddr  = fs.String("raft-addr", env("CAIRN_RAFT_ADDR", "127.0.0.1:8289"), "address for Raft traffic between nodes (env CAIRN_RAFT_ADDR)")
		bootstrap = fs.Bool("bootstrap", env("CAIRN_BOOTSTRAP", "") == "true", "start a new cluster with this node (and --peers) as voters (env CAIRN_BOOTSTRAP=true)")
		callTO    = fs.Duration("call-timeout", envDuration("CAIRN_CALL_TIMEOUT", 2*time.Minute), "timeout of one call to an app (env CAIRN_CALL_TIMEOUT)")
		inflight  = fs.Int("max-inflight", envInt("CAIRN_MAX_INFLIGHT", 256), "most app calls in flight at once (env CAIRN_MAX_INFLIGHT)")
		perFn     = fs.Int("max-inflight-per-function", envInt("CAIRN_MAX_INFLIGHT_PER_FUNCTION", 0), "most app calls in flight at once for one function; 0: half of --max-inflight (env CAIRN_MAX_INFLIGHT_PER_FUNCTION)")
		perApp    = fs.Int("max-inflight-per-app", envInt("CAIRN_MAX_INFLIGHT_PER_APP", 0), "most app calls in flight at once for one app; 0: three quarters of --max-inflight (env CAIRN_MAX_INFLIGHT_PER_APP)")
		readTO    = fs.Duration("http-read-timeout", envDuration("CAIRN_HTTP_READ_TIMEOUT", server.DefaultHTTPLimits.ReadTimeout), "longest a client may take to send a whole request, body included (env CAIRN_HTTP_READ_TIMEOUT)")
		writeTO   = fs.Duration("http-write-timeout", envDuration("CAIRN_HTTP_WRITE_TIMEOUT", server.DefaultHTTPLimits.WriteTimeout), "longest from a request's headers to the end of its answer (env CAIRN_HTTP_WRITE_TIMEOUT)")
		idleTO    = fs.Duration("http-idle-timeout", envDuration("CAIRN_HTTP_IDLE_TIMEOUT", server.DefaultHTTPLimits.IdleTimeout), "how long an idle kept-alive connection stays open (env CAIRN_HTTP_IDLE_TIMEOUT)")
		drainTO   = fs.Duration("drain-timeout", envDuration("CAIRN_DRAIN_TIMEOUT", 10*time.Second), "on shutdown, wait this long for app calls in flight to finish before stopping (env CAIRN_DRAIN_TIMEOUT)")
		logLevel  = fs.String("log-level", env("CAIRN_LOG_LEVEL", "info"), "debug, info, warn or error (env CAIRN_LOG_LEVEL)")
		noCkpt    = fs.Bool("no-checkpointing", env("CAIRN_NO_CHECKPOINTING", "") == "true", "one app call per step: don't let the SDK run several steps per call and checkpoint them (env CAIRN_NO_CHECKPOINTING=true)")
		logJSON   = fs.Bool("log-json", env("CAIRN_LOG_JSON", "") == "true", "log as JSON (env CAIRN_LOG_JSON=true)")
		archiveOn = fs.Bool("archive", env("CAIRN_ARCHIVE", "true") != "false", "keep the log entries Raft compacts away, in --archive-dir; --archive=false drops them (env CAIRN_ARCHIVE=false)")
		archDir   = fs.String("archive-dir", env("CAIRN_ARCHIVE_DIR", ""), "where archived log segments live (default: <data-dir>/archive) (env CAIRN_ARCHIVE_DIR)")
		archAge   = fs.Duration("archive-max-age", envDuration("CAIRN_ARCHIVE_MAX_AGE", 0), "drop archived segments whose newest record is older than this; 0: keep them (env CAIRN_ARCHIVE_MAX_AGE)")
		archBytes = fs.Int64("archive-max-bytes", envInt64("CAIRN_ARCHIVE_MAX_BYTES", 0), "drop the oldest archived segments while the archive holds more bytes than this; 0: no limit (env CAIRN_ARCHIVE_MAX_BYTES)")
		checkpts  = fs.Int("checkpoints", int(envInt64("CAIRN_CHECKPOINTS", raftnode.DefaultCheckpoints)), "copies of the state kept at past snapshots (hard links), so a point-in-time read far back starts near it; -1: none (env CAIRN_CHECKPOINTS)")
		snapThr   = fs.Uint64("snapshot-threshold", uint64(envInt64("CAIRN_SNAPSHOT_THRESHOLD", 0)), "Raft: snapshot and compact the log after this many new entries; 0: 16384 (env CAIRN_SNAPSHOT_THRESHOLD)")
		trailing  = fs.Uint64("trailing-logs", uint64(envInt64("CAIRN_TRAILING_LOGS", 0)), "Raft: entries kept in the log behind a snapshot, for slow followers; 0: 16384 (env CAIRN_TRAILING_LOGS)")
		commitDly = fs.Duration("commit-delay", envDuration("CAIRN_COMMIT_DELAY", raftnode.DefaultCommitDelay), "Raft: how long a small log entry may wait for other requests to share its fsync, while waiting has been gathering some (under steady concurrent load); a lone run's steps are not held. 0: never wait (env CAIRN_COMMIT_DELAY)")
		snapEvery = fs.Duration("snapshot-interval", envDuration("CAIRN_SNAPSHOT_INTERVAL", 0), "Raft: how often the snapshot threshold is checked (randomised up to 2x); 0: 2m (env CAIRN_SNAPSHOT_INTERVAL)")
	)
	fs.Var(&urls, "u", "app URL to sync, e.g. http://localhost:3000/api/inngest; repeatable (env CAIRN_APP_URLS, comma separated)")
	setLimits, err := limitFlags(fs)
	if err != nil {
		return err
	}
	fs.Var(&appHosts, "allow-app-hosts", "hosts, IPs and CIDRs apps may live on (app URLs and every call are checked; default: anywhere); repeatable, comma separated (env CAIRN_ALLOW_APP_HOSTS)")
	var join, advertise, raftAdvertise, tlsCert, tlsKey, tlsCA, secret *string
	var electionTO *time.Duration
	var signingKey, signingFallback *string
	var insecure, noDiscovery *bool
	var eventKeys stringList
	if dev {
		noDiscovery = fs.Bool("no-discovery", env("CAIRN_NO_DISCOVERY", "") == "true", "don't look for apps on localhost's common ports (env CAIRN_NO_DISCOVERY=true)")
	}
	if !dev {
		signingKey = fs.String("signing-key", env("CAIRN_SIGNING_KEY", ""), "key that signs requests to apps and that apps and clients present as a Bearer token: signkey-<env>-<hex> or bare even-length hex, e.g. signkey-prod-$(openssl rand -hex 32) (env CAIRN_SIGNING_KEY)")
		signingFallback = fs.String("signing-key-fallback", env("CAIRN_SIGNING_KEY_FALLBACK", ""), "a second accepted key, for rotation: the old key while apps move to the new one (env CAIRN_SIGNING_KEY_FALLBACK)")
		fs.Var(&eventKeys, "event-key", "a key apps send events with (POST /e/<key>); repeatable (env CAIRN_EVENT_KEYS, comma separated)")
		insecure = fs.Bool("insecure", env("CAIRN_INSECURE", "") == "true", "run without keys: anyone who reaches the port owns the cluster. Throwaway local clusters only (env CAIRN_INSECURE=true)")
		electionTO = fs.Duration("election-timeout", envDuration("CAIRN_ELECTION_TIMEOUT", raftnode.DefaultElectionTimeout), "Raft: a follower that hears nothing from the leader for this long (randomised up to 2x) starts an election; failover takes about 2x this. Raise it for WAN or overloaded nodes (env CAIRN_ELECTION_TIMEOUT)")
		fs.Var(&peers, "peers", "with --bootstrap: other voters as id=raftaddr, comma separated (env CAIRN_PEERS)")
		join = fs.String("join", env("CAIRN_JOIN", ""), "HTTP address of any member to join (env CAIRN_JOIN)")
		raftAdvertise = fs.String("raft-advertise", env("CAIRN_RAFT_ADVERTISE", ""), "Raft address other nodes dial (default: --raft-addr), when they reach this node through NAT or a proxy (env CAIRN_RAFT_ADVERTISE)")
		advertise = fs.String("http-advertise", env("CAIRN_HTTP_ADVERTISE", ""), "HTTP address other nodes forward requests to (default: host:port) (env CAIRN_HTTP_ADVERTISE)")
		tlsCert = fs.String("tls-cert", env(envTLSCert, ""), "this node's certificate (PEM; see cairn certs): mutual TLS for Raft and HTTP between nodes, and HTTPS for clients; needs --tls-key and --tls-ca (env "+envTLSCert+")")
		tlsKey = fs.String("tls-key", env(envTLSKey, ""), "the key of --tls-cert (PEM) (env "+envTLSKey+")")
		tlsCA = fs.String("tls-ca", env(envTLSCA, ""), "the cluster CA (PEM): peers must present a certificate it signed (env "+envTLSCA+")")
		secret = fs.String("cluster-secret", env(envClusterSecret, ""), "secret shared by the nodes of a cluster, proving joins and forwarded answers are theirs; at least 16 characters; required with --join or --peers. Prefer the environment variable: flags show in ps (env "+envClusterSecret+")")
	}
	fs.Usage = func() {
		if dev {
			fmt.Fprint(fs.Output(), "Usage: cairn dev [flags]\n\nRuns a single-node Cairn with an embedded data dir, serving the event API,\nSDK registration and Cairn's API on one port (8288, the SDK's dev default).\nPoint an app at it with INNGEST_DEV=1 (or INNGEST_BASE_URL=http://127.0.0.1:8288).\n\nFlags:\n")
		} else {
			fmt.Fprint(fs.Output(), "Usage: cairn start [flags]\n\nRuns one node of a Cairn cluster. The first node of a new cluster needs\n--bootstrap (with --peers for a static three-node bootstrap).\n\nProduction mode: --signing-key and at least one --event-key are required.\nCairn signs every request to apps with the key; apps (INNGEST_DEV=0,\nINNGEST_SIGNING_KEY, INNGEST_EVENT_KEY, INNGEST_BASE_URL) and client commands\npresent it as a Bearer token; events need an event key. --insecure runs\nwithout keys, for throwaway local clusters only.\n\nFlags:\n")
		}
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), "\nMemory: the Go collector runs at GOGC=400 under a soft limit of GOMEMLIMIT=1GiB\nunless those variables say otherwise (less GC CPU per step for some more heap).\n")
	}
	if listFlags {
		return handleFlagList(fs)
	}
	if v := os.Getenv("CAIRN_APP_URLS"); v != "" {
		urls.Set(v)
	}
	if v := os.Getenv("CAIRN_PEERS"); v != "" && !dev {
		peers.Set(v)
	}
	if v := os.Getenv("CAIRN_EVENT_KEYS"); v != "" && !dev {
		eventKeys.Set(v)
	}
	if v := os.Getenv("CAIRN_ALLOW_APP_HOSTS"); v != "" {
		appHosts.Set(v)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s takes flags only, not %q (app URLs go with -u)", cmd, fs.Arg(0))
	}
	logger, err := newLogger(*logLevel, *logJSON)
	if err != nil {
		return err
	}
	tuneGC()
	// CAIRN_CPUPROFILE=FILE profiles the whole process until it shuts down
	// (for bench runs).
	if path := os.Getenv("CAIRN_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	// CAIRN_PPROF_ADDR=HOST:PORT serves net/http/pprof there, to profile
	// one phase of a running node (never on the API's port: it is not
	// authenticated).
	if addr := os.Getenv("CAIRN_PPROF_ADDR"); addr != "" {
		go func() {
			if err := http.ListenAndServe(addr, pprofMux()); err != nil {
				logger.Error("pprof listener", "addr", addr, "err", err)
			}
		}()
	}
	slog.SetDefault(logger)
	cfg := server.Config{
		NodeID: *nodeID, DataDir: *dataDir, HTTPAddr: *host + ":" + *port, RaftAddr: *raftAddr,
		Bootstrap: *bootstrap || dev, ServerKind: "cloud", AppURLs: urls, CallTimeout: *callTO,
		MaxInflight: *inflight, MaxInflightPerFunction: *perFn, MaxInflightPerApp: *perApp, NoCheckpointing: *noCkpt,
		Logger: logger, DrainTimeout: *drainTO,
		HTTP:              server.HTTPLimits{ReadTimeout: *readTO, WriteTimeout: *writeTO, IdleTimeout: *idleTO},
		SnapshotThreshold: *snapThr, TrailingLogs: *trailing, SnapshotInterval: *snapEvery,
		Archive:     raftnode.ArchiveConfig{Off: !*archiveOn, Dir: *archDir, MaxAge: *archAge, MaxBytes: *archBytes},
		Checkpoints: raftnode.CheckpointConfig{Keep: *checkpts},
	}
	if *archAge < 0 || *archBytes < 0 {
		return errors.New("--archive-max-age and --archive-max-bytes must not be negative (0: keep everything)")
	}
	if *perFn < 0 || *perApp < 0 || *inflight < 1 {
		return errors.New("--max-inflight must be at least 1, --max-inflight-per-function and --max-inflight-per-app at least 0")
	}
	if *drainTO == 0 {
		cfg.DrainTimeout = -1 // don't wait
	}
	switch {
	case *commitDly < 0 || *commitDly > 100*time.Millisecond:
		return fmt.Errorf("--commit-delay %s: use 0 (never wait) up to 100ms", *commitDly)
	case *commitDly == 0:
		cfg.CommitDelay = -1 // never wait
	default:
		cfg.CommitDelay = *commitDly
	}
	if err := setLimits(&cfg); err != nil {
		return err
	}
	if cfg.AppHosts, err = hostpolicy.Parse(appHosts); err != nil {
		return err
	}
	if dev {
		cfg.ServerKind = "dev"
		cfg.Discovery = devDiscovery(*noDiscovery, *port)
	} else {
		if cfg.Keys, err = productionKeys(*signingKey, *signingFallback, eventKeys, *insecure, logger); err != nil {
			return err
		}
		cfg.EventKeys = eventKeys
		if *electionTO < 50*time.Millisecond {
			return fmt.Errorf("--election-timeout %s is too short: use at least 50ms", *electionTO)
		}
		cfg.Join, cfg.HTTPAdvertise, cfg.RaftAdvertise, cfg.ElectionTimeout = *join, *advertise, *raftAdvertise, *electionTO
		cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = *tlsCert, *tlsKey, *tlsCA
		// --insecure opens the node routes too, unless a secret is given.
		if !*insecure || *secret != "" {
			if cfg.ClusterSecret, err = clusterSecret(*secret, *join != "" || len(peers) > 0); err != nil {
				return err
			}
		}
	}
	for _, p := range peers {
		id, addr, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("--peers: %q is not id=raftaddr", p)
		}
		cfg.Peers = append(cfg.Peers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
	}
	srv, err := server.Start(cfg)
	if err != nil {
		return portTaken(err, cfg)
	}
	logger.Info("cairn listening", "mode", cmd, "http", srv.URL(), "raft", cfg.RaftAddr, "data_dir", cfg.DataDir, "apps", []string(urls),
		"tls", cfg.TLSCert != "", "discovery", cfg.Discovery != nil)
	if !dev && *secret == "" {
		logger.Info("no --cluster-secret: this node runs alone, and no node can join it")
	}
	if dev {
		fmt.Fprint(os.Stderr, devBanner(srv.URL(), cfg))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	logger.Info("shutting down", "signal", s.String())
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		return err
	case <-sig:
		return errors.New("second signal: exiting without a clean shutdown")
	case <-time.After(30 * time.Second):
		return errors.New("shutdown timed out")
	}
}

// productionKeys checks the keys cairn start needs: a signing key and at
// least one event key, unless --insecure says to run without any.
func productionKeys(primary, fallback string, eventKeys []string, insecure bool, log *slog.Logger) (signing.Keys, error) {
	var ks signing.Keys
	if insecure {
		if primary != "" || len(eventKeys) > 0 {
			return ks, errors.New("--insecure turns keys off: drop it, or drop --signing-key and --event-key")
		}
		log.Warn("INSECURE: running without keys. Anyone who can reach this port can register apps, send events, read every payload and cancel runs. Use only for throwaway local clusters.")
		return ks, nil
	}
	if primary == "" {
		return ks, errors.New("cairn start needs --signing-key (env CAIRN_SIGNING_KEY), e.g. signkey-prod-$(openssl rand -hex 32); for a throwaway local cluster pass --insecure")
	}
	if len(eventKeys) == 0 {
		return ks, errors.New("cairn start needs at least one --event-key (env CAIRN_EVENT_KEYS); for a throwaway local cluster pass --insecure")
	}
	var err error
	if ks.Primary, err = signing.ParseKey(primary); err != nil {
		return ks, fmt.Errorf("--signing-key: %w", err)
	}
	if fallback != "" {
		if ks.Fallback, err = signing.ParseKey(fallback); err != nil {
			return ks, fmt.Errorf("--signing-key-fallback: %w", err)
		}
	}
	for _, k := range eventKeys {
		if len(k) < 8 {
			return ks, fmt.Errorf("--event-key %q is too short to be a secret: use at least 8 characters", k)
		}
	}
	return ks, nil
}

func newLogger(level string, asJSON bool) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if asJSON {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
}

// devBanner is what cairn dev prints at start: where to point an app,
// every port it took (and the flag that moves it), and where it looks for
// apps.
func devBanner(url string, cfg server.Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  Cairn dev server: %s\n", url)
	fmt.Fprintf(&b, "  Web UI: %s/\n", url)
	fmt.Fprintf(&b, "  Point your app at it: INNGEST_DEV=1 INNGEST_BASE_URL=%s\n", url)
	fmt.Fprintf(&b, "  Ports: HTTP %s (UI, API, events, SDKs; --port), Raft %s (the log; --raft-addr)\n", portOf(url), portOf(cfg.RaftAddr))
	if d := cfg.Discovery; d != nil {
		fmt.Fprintf(&b, "  Looking for apps on localhost ports %s at %s (--no-discovery to stop)\n",
			portRanges(d.Ports), strings.Join(d.Paths, ", "))
	}
	return b.String() + "\n"
}

func portOf(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

// portRanges writes ports as "80, 443, 3000-3010, 5000".
func portRanges(ports []int) string {
	var parts []string
	for i := 0; i < len(ports); {
		j := i
		for j+1 < len(ports) && ports[j+1] == ports[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", ports[i], ports[j]))
		} else {
			parts = append(parts, strconv.Itoa(ports[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// devDiscovery is cairn dev's discovery: Inngest's dev server's ports and
// paths, plus $PORT (as Inngest's dev server adds it: many frameworks
// listen there), less the dev server's own port; nil with --no-discovery.
// cairn start never discovers: a production node syncs the apps it is
// given, not whatever listens on its host.
func devDiscovery(off bool, ownPort string) *discovery.Config {
	if off {
		return nil
	}
	var ports []int
	for _, p := range discovery.DefaultPorts {
		if strconv.Itoa(p) != ownPort {
			ports = append(ports, p)
		}
	}
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil && p > 0 && p < 65536 &&
		os.Getenv("PORT") != ownPort && !slices.Contains(ports, p) {
		ports = append(ports, p)
	}
	return &discovery.Config{Ports: ports, Paths: discovery.DefaultPaths}
}

// portTaken turns "address already in use" into which port and the flag
// that moves it; other errors pass as they are.
func portTaken(err error, cfg server.Config) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	if strings.HasPrefix(err.Error(), "raftnode:") {
		return fmt.Errorf("the Raft port %s is taken (by another cairn?): start with --raft-addr 127.0.0.1:PORT (env CAIRN_RAFT_ADDR), or stop what holds it (%w)",
			cfg.RaftAddr, err)
	}
	return fmt.Errorf("the HTTP port %s is taken (by another cairn?): start with --port PORT (env CAIRN_PORT), or stop what holds it (%w)",
		portOf(cfg.HTTPAddr), err)
}

// tuneGC trades heap for CPU: the collector's default (GOGC=100) spent
// about a sixth of a node's CPU in a burst. At 400 a burst's Cairn CPU per
// step fell by about 17% for about 30% more RSS; the soft limit keeps a
// large heap from growing past it. GOGC and GOMEMLIMIT, when set, win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(1 << 30)
	}
}

func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", httppprof.Index)
	m.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	return m
}
