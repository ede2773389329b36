// Command chaos is Cairn's fault-injection harness: it runs a three-node
// cluster of real `cairn start` processes, drives it with a fixed-rate event
// load and an in-process test app that journals every step execution,
// injects faults (leader SIGKILL, SIGSTOP, partitions, crash loops, torn WAL
// tails), heals, waits for quiescence and checks the invariants of
// /work/shared/notes/reliability-plan.md (I1-I10 as far as they can be seen
// from outside). It also measures the cluster against a single `cairn dev`
// node under the same load. See chaos/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cairn-dev/cairn/internal/proc"
)

type config struct {
	scenario       string
	kills          int
	interval       time.Duration
	jitter         time.Duration
	down           time.Duration
	stopMin        time.Duration
	stopMax        time.Duration
	partitionFor   time.Duration
	tornMax        int
	rate           float64
	callTimeout    time.Duration
	stepDelay      time.Duration
	perfDuration   time.Duration
	burst          int
	senders        int
	skipPerf       bool
	warmup         time.Duration
	giveUp         time.Duration
	quiet          time.Duration
	quietMax       time.Duration
	chaosMax       time.Duration
	timeout        time.Duration
	isolationGrace time.Duration
	outDir         string
	report         string
	bin            string
	keep           bool
	seed           uint64
	gomaxprocs     int
	maxInflight    int

	runID string
	root  string
}

type harness struct {
	cfg   *config
	cl    *cluster
	app   *testApp
	load  *loadGen
	hist  *history
	start time.Time
	notes []string
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "dump-log":
			if err := dumpLogMain(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "chaos dump-log:", err)
				os.Exit(2)
			}
			return
		case "compare-logs":
			if err := compareLogsMain(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "chaos compare-logs:", err)
				os.Exit(2)
			}
			return
		}
	}
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		if code == 0 {
			code = 2
		}
	}
	os.Exit(code)
}

var scenarios = []string{"leader-kill", "leader-restart", "sigstop", "partition", "partition-proxy", "crash-restart", "torn-wal"}

func parseFlags() (*config, error) {
	cfg := &config{}
	flag.StringVar(&cfg.scenario, "scenario", "leader-kill", "fault scenario: "+strings.Join(scenarios, ", "))
	flag.IntVar(&cfg.kills, "kills", 100, "number of fault cycles (kills, pauses, partitions, torn restarts)")
	flag.DurationVar(&cfg.interval, "interval", 6*time.Second, "rest between the end of one fault cycle and the next fault")
	flag.DurationVar(&cfg.jitter, "jitter", 2*time.Second, "± random jitter on -interval")
	flag.DurationVar(&cfg.down, "down", 2*time.Second, "how long a killed node stays down (crash-restart: random in [0.2s, 0.2s+2*down])")
	flag.DurationVar(&cfg.stopMin, "stop-min", 5*time.Second, "sigstop: shortest pause")
	flag.DurationVar(&cfg.stopMax, "stop-max", 15*time.Second, "sigstop: longest pause")
	flag.DurationVar(&cfg.partitionFor, "partition-for", 15*time.Second, "partition: how long the leader is cut off")
	flag.IntVar(&cfg.tornMax, "torn-max", 4096, "torn-wal: cut a random 1..N bytes off the newest raft WAL")
	flag.Float64Var(&cfg.rate, "rate", 20, "events per second during the chaos phase (and the steady perf phases)")
	flag.DurationVar(&cfg.callTimeout, "call-timeout", 5*time.Second, "cairn --call-timeout (claim lease = this + 10s)")
	flag.DurationVar(&cfg.stepDelay, "step-delay", 5*time.Millisecond, "time the test app spends in each step body")
	flag.DurationVar(&cfg.perfDuration, "perf-duration", 20*time.Second, "steady perf phase length (cluster and single node)")
	flag.IntVar(&cfg.burst, "burst", 3000, "burst perf phase: events sent as fast as -senders clients can")
	flag.IntVar(&cfg.senders, "senders", 8, "burst perf phase: concurrent senders")
	flag.BoolVar(&cfg.skipPerf, "skip-perf", false, "skip the cluster vs single-node perf phases")
	flag.DurationVar(&cfg.warmup, "warmup", 5*time.Second, "load before the first fault")
	flag.DurationVar(&cfg.giveUp, "give-up", 120*time.Second, "a client op stops retrying after this")
	flag.DurationVar(&cfg.quiet, "quiet", 60*time.Second, "after healing: stop waiting for runs when none finished for this long")
	flag.DurationVar(&cfg.quietMax, "quiet-max", 5*time.Minute, "after healing: wait at most this long for runs to finish")
	flag.DurationVar(&cfg.chaosMax, "chaos-max", 30*time.Minute, "stop injecting faults after this long even if -kills is not reached")
	flag.DurationVar(&cfg.timeout, "timeout", 75*time.Minute, "hard limit for the whole run")
	flag.DurationVar(&cfg.isolationGrace, "isolation-grace", 2*time.Second, "acks from a paused/partitioned node later than this after the fault are flagged")
	flag.StringVar(&cfg.outDir, "out", "", "output dir (default chaos/out/<scenario>-<time>)")
	flag.StringVar(&cfg.report, "report", "", "report path (default <out>/report.md; chaos/out/report.md is also written)")
	flag.StringVar(&cfg.bin, "bin", "", "cairn binary (default: go build -o bin/cairn ./cmd/cairn)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep node data dirs even when every check passes")
	flag.Uint64Var(&cfg.seed, "seed", 0, "random seed (0: from the clock)")
	flag.IntVar(&cfg.gomaxprocs, "gomaxprocs", 0, "GOMAXPROCS for each cairn process (0: Go's default)")
	flag.IntVar(&cfg.maxInflight, "max-inflight", 0, "cairn --max-inflight (0: cairn's default, 256)")
	flag.Parse()
	ok := false
	for _, s := range scenarios {
		ok = ok || s == cfg.scenario
	}
	if !ok {
		return nil, fmt.Errorf("unknown -scenario %q (one of %s)", cfg.scenario, strings.Join(scenarios, ", "))
	}
	if cfg.rate <= 0 || cfg.kills < 0 || cfg.stopMax < cfg.stopMin {
		return nil, errors.New("bad flags: -rate must be > 0, -kills >= 0, -stop-max >= -stop-min")
	}
	if cfg.seed == 0 {
		cfg.seed = uint64(time.Now().UnixNano())
	}
	cfg.runID = fmt.Sprintf("c%x", time.Now().UnixMilli()%0xffffffff)
	return cfg, nil
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/cairn-dev/cairn") {
			return dir, nil
		}
		p := filepath.Dir(dir)
		if p == dir {
			return "", errors.New("run from inside the cairn repository (no go.mod found)")
		}
		dir = p
	}
}

func run() (int, error) {
	cfg, err := parseFlags()
	if err != nil {
		return 2, err
	}
	if cfg.root, err = findRoot(); err != nil {
		return 2, err
	}
	if cfg.outDir == "" {
		cfg.outDir = filepath.Join(cfg.root, "chaos", "out", cfg.scenario+"-"+time.Now().Format("20060102-150405"))
	}
	logDir := filepath.Join(cfg.outDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return 2, err
	}
	if cfg.report == "" {
		cfg.report = filepath.Join(cfg.outDir, "report.md")
	}

	// Everything is bounded by -timeout; the first SIGINT/SIGTERM stops the
	// faults and load and goes on to a short report, the second kills.
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	var interruptedFlag atomic.Bool
	var nsForExit atomic.Pointer[netns]
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-sigs
		interruptedFlag.Store(true)
		fmt.Fprintln(os.Stderr, "\nchaos: interrupted: stopping faults and load (again to kill everything)")
		cancel()
		<-sigs
		proc.KillAll()
		if ns := nsForExit.Load(); ns != nil {
			ns.teardown()
		}
		os.Exit(130)
	}()
	defer proc.KillAll()

	if cfg.bin == "" {
		cfg.bin = filepath.Join(cfg.root, "bin", "cairn")
		fmt.Println("building bin/cairn ...")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", cfg.bin, "./cmd/cairn")
		cmd.Dir = cfg.root
		if out, err := cmd.CombinedOutput(); err != nil {
			return 2, fmt.Errorf("go build: %v\n%s", err, out)
		}
	}

	var ns *netns
	host := "127.0.0.1"
	if cfg.scenario == "partition" {
		if err := netnsAvailable(); err != nil {
			msg := fmt.Sprintf("SKIPPED (partition): network namespaces are not usable here: %v. "+
				"Partitions by netns need root and `ip` (reliability-plan.md §5.8); -scenario partition-proxy needs neither.", err)
			fmt.Println(msg)
			_ = os.WriteFile(cfg.report, []byte("# Cairn chaos report\n\n"+msg+"\n"), 0o644)
			return 0, nil
		}
		if ns, err = setupNetns(); err != nil {
			return 2, fmt.Errorf("netns setup: %w", err)
		}
		defer ns.teardown()
		nsForExit.Store(ns)
		host = ns.hostAddr()
		fmt.Printf("network namespaces %s1..3 on bridge %s (%s.0/24)\n", nsPrefix, nsBridge, nsSubnet)
	}

	dataBase, err := os.MkdirTemp("", "cairn-chaos-")
	if err != nil {
		return 2, err
	}
	h := &harness{cfg: cfg, start: time.Now()}
	rng := rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15))
	h.hist, err = openHistory(filepath.Join(cfg.outDir, "history.jsonl"))
	if err != nil {
		return 2, err
	}
	defer h.hist.close()
	h.load = &loadGen{runID: cfg.runID, hist: h.hist, giveUp: cfg.giveUp, timeout: 5 * time.Second,
		rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))}
	fmt.Printf("chaos: scenario %s, %d faults, %.0f events/s, seed %d, out %s\n", cfg.scenario, cfg.kills, cfg.rate, cfg.seed, cfg.outDir)

	rep := &report{cfg: cfg, started: h.start}

	// 1. Single node (cairn dev) under the same load, for comparison.
	if !cfg.skipPerf {
		fmt.Println("== perf: single node (cairn dev)")
		res, err := h.perfTarget(ctx, "single", "127.0.0.1", dataBase, logDir, nil)
		if err != nil {
			return h.fail(rep, err)
		}
		rep.perf = append(rep.perf, res...)
	}

	// 2. The cluster.
	fmt.Println("== starting the 3-node cluster")
	h.app, err = startApp("cluster", host, filepath.Join(cfg.outDir, "journal.jsonl"), cfg.stepDelay)
	if err != nil {
		return h.fail(rep, err)
	}
	defer h.app.close()
	h.cl, err = newCluster(cfg, "cluster", dataBase, logDir, ns, cfg.scenario == "partition-proxy")
	if err != nil {
		return h.fail(rep, err)
	}
	if h.cl.px != nil {
		defer h.cl.px.Close()
	}
	if err := h.cl.start(ctx); err != nil {
		return h.fail(rep, err)
	}
	if err := h.cl.register(ctx, h.app); err != nil {
		return h.fail(rep, err)
	}
	mon := h.cl.monitor(ctx, 500*time.Millisecond)
	if !cfg.skipPerf {
		fmt.Println("== perf: 3-node cluster")
		rep.perf = append(rep.perf, h.perfPhases(ctx, h.cl, h.app, "cluster")...)
	}

	// 3. Chaos: steady load + faults.
	fmt.Printf("== chaos: %s x%d with %.0f events/s\n", cfg.scenario, cfg.kills, cfg.rate)
	nm := &nemesis{cfg: cfg, c: h.cl, rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))}
	if nm.f, err = os.Create(filepath.Join(cfg.outDir, "nemesis.jsonl")); err != nil {
		return h.fail(rep, err)
	}
	defer nm.f.Close()
	stopLoad, stopLoadCancel := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	chaosStart := time.Now()
	go func() {
		defer close(loadDone)
		h.load.steady(stopLoad, ctx, "chaos", cfg.rate, h.cl.urls)
	}()
	_ = sleepCtx(ctx, cfg.warmup)
	nm.run(ctx)
	stopLoadCancel()
	fmt.Println("== faults done; waiting for client ops to finish")
	<-loadDone
	rep.chaosDur = time.Since(chaosStart)

	// 4. Heal, wait for quiescence, check. Bounded on its own so that an
	// interrupted run still gets a report.
	cctx, ccancel := context.WithTimeout(context.Background(), cfg.quietMax+10*time.Minute)
	defer ccancel()
	interrupted := interruptedFlag.Load()
	if interrupted {
		cctx2, c2 := context.WithTimeout(context.Background(), 2*time.Minute)
		defer c2()
		cctx = cctx2
	}
	fmt.Println("== healing")
	if err := h.cl.heal(); err != nil {
		h.notes = append(h.notes, "heal: "+err.Error())
	}
	h.notes = append(h.notes, h.cl.ensureAllUp(cctx)...)
	fmt.Println("== checking")
	var ops []*opRec
	for _, p := range []string{"cluster-steady", "cluster-burst", "chaos"} {
		ops = append(ops, h.hist.all(p)...)
	}
	rep.check = h.check(cctx, ops, nm.records(), nm.isolated)
	rep.faults = nm.records()
	rep.terms, rep.termConflicts = mon.summary()
	rep.nodes = h.cl.nodes
	rep.notes = h.notes
	rep.interrupted = interrupted
	rep.chaosOps = h.hist.all("chaos")
	rep.chaosApp = h.app.stats("chaos")
	// Stop the nodes (gracefully) and compare their Raft logs.
	h.cl.stopAll()
	fmt.Println("== comparing the nodes' raft logs")
	rep.logs = compareClusterLogs(h.cl)
	rep.finished = time.Now()
	pass := rep.write()
	fmt.Println()
	fmt.Print(rep.summary())
	fmt.Printf("\nreport: %s\n", cfg.report)
	if pass && !cfg.keep {
		_ = os.RemoveAll(dataBase)
	} else {
		fmt.Printf("node data dirs kept in %s\n", dataBase)
	}
	if !pass {
		return 1, nil
	}
	return 0, nil
}

func (h *harness) fail(rep *report, err error) (int, error) {
	rep.fatal = err.Error()
	rep.finished = time.Now()
	if h.cl != nil {
		rep.nodes = h.cl.nodes
	}
	rep.write()
	return 2, err
}

func (c *cluster) stopAll() {
	for _, n := range c.nodes {
		n.stopGraceful()
	}
}
