// Command bench measures Cairn end to end: it builds bin/cairn, runs
// `cairn dev` as a subprocess on free loopback ports with a fresh data dir,
// drives it with the Go SDK app (sdk/, served inside the bench), a
// hand-written protocol handler (the raw app, to isolate the SDK's own
// cost) and/or the real TS SDK app (e2e/tsapp), and reports throughput,
// latency, engine overhead per step hop, the CPU, memory and log bytes the
// Cairn process spends per step, and the app's and the load generator's
// CPU per step.
//
//	go run ./bench [-app go|raw|ts|both|LIST] [-n N] [-rate R] [-duration D] [-json FILE]
//
// See bench/README.md for what each figure means. It is not part of go test.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-dev/cairn/internal/proc"
)

type options struct {
	app       string   // -app as given
	apps      []string // the app modes to run, in order: go, raw, ts
	n         int
	senders   int
	rate      float64
	duration  time.Duration
	scenarios []string
	timeout   time.Duration
	jsonPath  string
	cairnBin  string
	keep      bool
	poll      time.Duration
	stall     time.Duration
	logLevel  string
	tsProxy   bool
	warmup    int
	security  securityModes // -production: dev, production, or both in turn
	archive   archiveModes  // -archive: on, off, or both in turn
	ckpt      ckptModes     // -checkpointing: on, off (cairn --no-checkpointing), or both in turn
	// snapshotThreshold, when set, makes Cairn snapshot and compact its log
	// every that many entries (checked every second).
	snapshotThreshold uint64

	// sleep scenario
	sleepers         int
	sleepLead        time.Duration
	sleepSpread      time.Duration
	sleepBatch       int
	sleepIdle        time.Duration
	sleepCheck       int
	sleepMeasureOnly bool
	sleepProbe       time.Duration

	// flow scenario
	flowN      int
	flowKeys   int
	flowBatch  int
	flowPasses []string

	// fair scenario
	fairHangN    int
	fairHang     time.Duration
	fairRate     float64
	fairDuration time.Duration
}

func parseFlags() (*options, error) {
	o := &options{security: securityModes{modeDev}, archive: archiveModes{archiveOn}, ckpt: ckptModes{ckptOn}}
	var scen string
	flag.StringVar(&o.app, "app", "both", "app modes, comma separated: go (the Go SDK app, in the bench process), raw (a hand-written\n"+
		"protocol handler in the bench process: measures the SDK's own cost by difference), ts (e2e/tsapp, the TS SDK);\n"+
		"both = go,ts")
	flag.IntVar(&o.n, "n", 0, "burst: events to send (default 2000 for go and raw, 200 for ts)")
	flag.IntVar(&o.senders, "senders", 4, "burst: concurrent event senders")
	flag.Float64Var(&o.rate, "rate", 5, "steady: events per second")
	flag.DurationVar(&o.duration, "duration", 0, "steady: how long to send (default 10s for go and raw, 20s for ts)")
	flag.StringVar(&scen, "scenarios", "burst,steady", "scenarios to run, comma separated: burst, steady, sleep, flow, fair, pit (sleep, flow and fair: Go app only;\n"+
		"pit rebuilds the state at past log indexes from the log the scenarios before it wrote: burst,pit)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "overall time limit; everything is stopped when it runs out\n"+
		"(with -scenarios sleep the default grows with -sleepers and -sleep-lead; with flow, by 7ms per event per pass)")
	flag.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to this file")
	flag.StringVar(&o.cairnBin, "cairn", "", "use this cairn binary instead of building bin/cairn")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (data dirs and logs) even on success")
	flag.DurationVar(&o.poll, "poll", 250*time.Millisecond, "how often to poll Cairn for finished runs")
	flag.DurationVar(&o.stall, "stall", 60*time.Second, "give up on a scenario when no run finishes for this long")
	flag.StringVar(&o.logLevel, "log-level", "info", "cairn --log-level")
	flag.BoolVar(&o.tsProxy, "ts-proxy", false, "ts: put a timing proxy in front of the TS app to measure step hops\n(costs ~10% of TS burst throughput on a 2-core box)")
	flag.Var(&o.security, "production", "run Cairn in production mode: cairn start with a fresh signing key and event key; the apps\n"+
		"verify signed calls and sign their answers, the bench sends the Bearer token and the event key.\n"+
		"-production=both runs each app mode in dev, then in production, and compares CPU per step")
	flag.Var(&o.ckpt, "checkpointing", "async checkpointing: on (Cairn's default), off (cairn --no-checkpointing), or both (off, then on) to compare them")
	flag.Var(&o.archive, "archive", "Cairn's log archive: on (the default), off, or both (off, then on) to compare the hot path")
	flag.Uint64Var(&o.snapshotThreshold, "snapshot-threshold", 0, "cairn --snapshot-threshold and --trailing-logs (checked every second), so the log is\n"+
		"compacted (and archived) during the scenarios; 0: Cairn's default (16384)")
	flag.IntVar(&o.warmup, "warmup", 5, "events sent (and awaited) before the scenarios, not measured")
	flag.IntVar(&o.sleepers, "sleepers", 100000, "sleep: runs that sleep at once")
	flag.DurationVar(&o.sleepLead, "sleep-lead", 0, "sleep: from the first send to the wake-up instant\n"+
		"(default 15s + 1ms per sleeper, enough to register every sleep first; 6h with -sleep-measure-only)")
	flag.DurationVar(&o.sleepSpread, "sleep-spread", 0, "sleep: spread the wake-ups uniformly over [until, until+D) instead of all at once")
	flag.IntVar(&o.sleepBatch, "sleep-batch", 500, "sleep: events per POST /e")
	flag.DurationVar(&o.sleepIdle, "sleep-idle", 5*time.Second, "sleep: how long to measure Cairn's CPU while every run sleeps")
	flag.IntVar(&o.sleepCheck, "sleep-check", 10000, "sleep: runs (random sample) whose history is read from Cairn after the wake-up\n"+
		"(at most 500 with -sleep-measure-only)")
	flag.IntVar(&o.flowN, "flow-n", 10000, "flow: events per pass (the keyed pass uses this many distinct concurrency keys)")
	flag.IntVar(&o.flowKeys, "flow-keys", 10, "flow: distinct keys in the contention pass (limit 1 per key)")
	flag.IntVar(&o.flowBatch, "flow-batch", 500, "flow: events per POST /e")
	flag.IntVar(&o.fairHangN, "fair-hang-n", 300, "fair: events to the function whose calls hang")
	flag.DurationVar(&o.fairHang, "fair-hang", 30*time.Second, "fair: how long a hanging call waits at most (the scenario releases them once measured)")
	flag.Float64Var(&o.fairRate, "fair-rate", 10, "fair: events per second to the unrelated function while the others hang")
	flag.DurationVar(&o.fairDuration, "fair-duration", 5*time.Second, "fair: how long to send them")
	var flowPasses string
	flag.StringVar(&flowPasses, "flow-passes", "none,conc,conc,none,conc-few", "flow: passes to run, in order (repeats allowed): none, conc (-flow-n keys), conc-few (-flow-keys keys);\n"+
		"CPU per step vs none divides by the mean of the none passes")
	flag.DurationVar(&o.sleepProbe, "sleep-probe", 100*time.Millisecond, "sleep: during the wake-up, send one event of benchgo-import-contacts this often\n"+
		"and report those new runs' latency (0: none)")
	flag.BoolVar(&o.sleepMeasureOnly, "sleep-measure-only", false, "sleep: stop once every run sleeps (RSS, disk, idle CPU); do not wait for the wake-up")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: go run ./bench [flags]\n\n"+
			"Starts cairn dev (built from ./cmd/cairn) with a fresh data dir per app mode and benchmarks it.\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", flag.Args())
	}
	for _, a := range strings.Split(o.app, ",") {
		switch a = strings.TrimSpace(a); a {
		case "":
		case "both":
			o.apps = append(o.apps, appSDK, "ts")
		case appSDK, appRaw, "ts":
			o.apps = append(o.apps, a)
		default:
			return nil, fmt.Errorf("-app: want go, raw, ts or both (or a list), not %q", a)
		}
	}
	slices.Sort(o.apps) // go, raw, ts: the Go apps back to back
	if o.apps = slices.Compact(o.apps); len(o.apps) == 0 {
		return nil, errors.New("-app: no app selected")
	}
	goApps := slices.ContainsFunc(o.apps, isGoApp)
	for _, s := range strings.Split(scen, ",") {
		s = strings.TrimSpace(s)
		switch s {
		case "":
		case "burst", "steady", "sleep", "flow", "fair", "pit":
			o.scenarios = append(o.scenarios, s)
		default:
			return nil, fmt.Errorf("unknown scenario %q (want burst, steady, sleep, flow, fair or pit)", s)
		}
	}
	if len(o.scenarios) == 0 {
		return nil, errors.New("no scenario selected")
	}
	if o.n < 0 || o.senders < 1 || o.rate <= 0 || o.duration < 0 || o.timeout <= 0 {
		return nil, errors.New("-n must be >= 0, -senders >= 1, -rate > 0, -duration >= 0, -timeout > 0")
	}
	timeoutSet := false
	flag.Visit(func(f *flag.Flag) { timeoutSet = timeoutSet || f.Name == "timeout" })
	if slices.Contains(o.scenarios, "flow") {
		if !goApps {
			return nil, errors.New("the flow scenario needs a Go app: -app go (or raw)")
		}
		if o.flowN < 1 || o.flowKeys < 1 || o.flowBatch < 1 {
			return nil, errors.New("-flow-n, -flow-keys and -flow-batch must be >= 1")
		}
		for _, p := range strings.Split(flowPasses, ",") {
			switch p = strings.TrimSpace(p); p {
			case "":
			case "none", "conc", "conc-few":
				o.flowPasses = append(o.flowPasses, p)
			default:
				return nil, fmt.Errorf("unknown flow pass %q (want none, conc or conc-few)", p)
			}
		}
		if len(o.flowPasses) == 0 {
			return nil, errors.New("-flow-passes: no pass selected")
		}
		if !timeoutSet {
			o.timeout += flowTimeout(o)
		}
	}
	if slices.Contains(o.scenarios, "fair") {
		if !goApps {
			return nil, errors.New("the fair scenario needs a Go app: -app go (or raw)")
		}
		if o.fairHangN < 1 || o.fairHang <= 0 || o.fairRate <= 0 || o.fairDuration <= 0 {
			return nil, errors.New("-fair-hang-n must be >= 1, -fair-hang, -fair-rate and -fair-duration > 0")
		}
	}
	if slices.Contains(o.scenarios, "sleep") {
		if !goApps {
			return nil, errors.New("the sleep scenario needs a Go app: -app go (or raw)")
		}
		if o.sleepers < 1 || o.sleepBatch < 1 || o.sleepLead < 0 || o.sleepSpread < 0 || o.sleepIdle < 0 {
			return nil, errors.New("-sleepers and -sleep-batch must be >= 1, -sleep-lead, -sleep-spread and -sleep-idle >= 0")
		}
		if o.sleepSpread > 0 && o.sleepSpread < time.Millisecond {
			return nil, errors.New("-sleep-spread must be at least 1ms")
		}
		if !timeoutSet {
			o.timeout = max(o.timeout, sleepTimeout(o))
		}
	}
	if runs := len(o.security) * len(o.archive) * len(o.ckpt); runs > 1 && !timeoutSet {
		o.timeout *= time.Duration(runs)
	}
	return o, nil
}

func main() {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	os.Exit(run(o))
}

func run(o *options) (code int) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	// Everything the bench starts from here is the load generator's, unless
	// it says otherwise (the apps' servers, the proxies): cpusplit.go.
	labelGoroutine(partBench)

	// First Ctrl-C: stop gracefully (the report is still printed). Second:
	// kill every subprocess and leave.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "bench: interrupted, stopping (again to kill)")
		cancel()
		<-sigs
		proc.KillAll()
		os.Exit(130)
	}()
	defer func() {
		if r := recover(); r != nil {
			proc.KillAll()
			panic(r)
		}
	}()
	defer proc.StopAll(10 * time.Second)

	loadavg, _ := os.ReadFile("/proc/loadavg")
	rep := &Report{
		StartedAt: time.Now().Format(time.RFC3339), Command: "go run ./bench " + strings.Join(os.Args[1:], " "),
		GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), ClockTicks: proc.ClockTicks(),
		LoadAvg: strings.TrimSpace(string(loadavg)),
	}
	root, err := findRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	bin := o.cairnBin
	if bin != "" {
		// Subprocesses run in their own work dirs: make the path absolute.
		if bin, err = filepath.Abs(bin); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	} else {
		logf("building bin/cairn")
		if bin, err = buildCairn(ctx, root); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	work, err := os.MkdirTemp("", "cairn-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	failed := false
	defer func() {
		if o.keep || failed {
			fmt.Fprintf(os.Stderr, "bench: data dirs and logs kept in %s\n", work)
		} else {
			os.RemoveAll(work)
		}
	}()

	for _, mr := range modeRuns(o.apps, o.security, o.archive, o.ckpt) {
		m := mr.name
		if ctx.Err() != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: skipped: %v", m, ctx.Err()))
			failed = true
			continue
		}
		dir := filepath.Join(work, m)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			rep.Errors = append(rep.Errors, err.Error())
			failed = true
			continue
		}
		var rs []*Result
		keys, err := mr.keys()
		switch {
		case err != nil:
		case isGoApp(mr.app):
			rs, err = runGoMode(ctx, o, mr.app, bin, dir, keys, append(cairnArgs(o, mr.archive), ckptArgs(mr.ckpt)...))
		default:
			rs, err = runTSMode(ctx, o, bin, root, dir, keys, append(cairnArgs(o, mr.archive), ckptArgs(mr.ckpt)...))
		}
		for _, r := range rs {
			r.Mode, r.Archive, r.Checkpointing = mr.security, mr.archive, mr.ckpt
		}
		rep.Results = append(rep.Results, rs...)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", m, err))
			failed = true
		}
		for _, r := range rs {
			if r.Error != "" || r.Unfinished > 0 || r.Failed > 0 {
				failed = true
			}
		}
	}
	rep.Comparison = compareModes(rep.Results)
	rep.ArchiveComparison = compareArchive(rep.Results)
	rep.CkptComparison = compareCkpt(rep.Results)
	rep.SDKComparison = compareSDK(rep.Results)
	printReport(os.Stdout, rep)
	if o.jsonPath != "" {
		if err := writeJSON(o.jsonPath, rep); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func runGoMode(ctx context.Context, o *options, kind, bin, dir string, keys *prodKeys, extra []string) ([]*Result, error) {
	port, err := pickCairnPort()
	if err != nil {
		return nil, err
	}
	app, err := startGoApp(kind, fmt.Sprintf("http://127.0.0.1:%d", port), keys)
	if err != nil {
		return nil, err
	}
	defer app.stop()
	logf("%s: starting cairn (%s) on 127.0.0.1:%d (data %s), %s at %s", kind, securityName(keys), port, dir, goAppName(kind), app.url)
	c, err := startCairn(ctx, bin, dir, port, o.logLevel, []string{app.url}, keys, extra)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	if err := c.waitApp(ctx, goAppID, 30*time.Second); err != nil {
		if s, _ := app.syncErr.Load().(string); s != "" {
			err = fmt.Errorf("%w\nlast register error: %s", err, s)
		}
		return nil, err
	}
	n, d := o.n, o.duration
	if n == 0 {
		n = 2000
	}
	if d == 0 {
		d = 10 * time.Second
	}
	e := &env{app: kind, cairn: c, hops: app.hops, sleeper: app.sleeper, flow: app.flow, keys: keys, opts: o,
		ckpt: &app.ckpt, crypto: app.crypto, appInBench: true,
		appCPU: goAppName(kind) + ": its share of the bench process's CPU (getrusage × CPU-profile samples labelled app)"}
	return runScenarios(ctx, e, n, d)
}

func runTSMode(ctx context.Context, o *options, bin, root, dir string, keys *prodKeys, extra []string) ([]*Result, error) {
	appDir := filepath.Join(root, "e2e", "tsapp")
	if err := ensureNodeModules(ctx, appDir); err != nil {
		return nil, err
	}
	tsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	hops := newHopMeter()
	appURL := fmt.Sprintf("http://127.0.0.1:%d/api/inngest", tsPort)
	if o.tsProxy {
		target, _ := urlParse(fmt.Sprintf("http://127.0.0.1:%d", tsPort))
		base, stopProxy, err := startProxy(target, hops)
		if err != nil {
			return nil, err
		}
		defer stopProxy()
		appURL = base + "/api/inngest"
	}
	port, err := pickCairnPort()
	if err != nil {
		return nil, err
	}
	logf("ts: starting cairn (%s) on 127.0.0.1:%d (data %s), app at %s", securityName(keys), port, dir, appURL)
	c, err := startCairn(ctx, bin, dir, port, o.logLevel, nil, keys, extra)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	// The SDK reaches Cairn through a proxy that counts its checkpoints.
	var ckpt ckptMeter
	sdkBase, stopCounter, err := startCkptCounter(c.url, &ckpt)
	if err != nil {
		return nil, err
	}
	defer stopCounter()
	ts, err := startTSApp(ctx, appDir, dir, tsPort, sdkBase, keys)
	if err != nil {
		return nil, err
	}
	defer ts.Stop(5 * time.Second)
	var synced struct {
		Data []struct {
			OK      bool   `json:"ok"`
			Status  int    `json:"status"`
			Message string `json:"message"`
		} `json:"data"`
	}
	if err := c.postJSON(ctx, "/v1/apps/sync", map[string]string{"url": appURL}, &synced); err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	for _, s := range synced.Data {
		if !s.OK {
			logf("ts: sync ping answered %d: %s", s.Status, s.Message)
		}
	}
	if err := c.waitApp(ctx, tsAppID, 30*time.Second); err != nil {
		return nil, fmt.Errorf("%w\n--- tsapp log ---\n%s", err, proc.TailFile(ts.LogPath(), 20))
	}
	n, d := o.n, o.duration
	if n == 0 {
		n = 200
	}
	if d == 0 {
		d = 20 * time.Second
	}
	e := &env{app: "ts", cairn: c, hops: hops, opts: o, appPid: ts.Pid(), appCPU: "node child (tsapp): utime+stime", ckpt: &ckpt}
	rs, err := runScenarios(ctx, e, n, d)
	if !o.tsProxy {
		for _, r := range rs {
			r.Notes = append(r.Notes, "step hop overhead is not measured for the TS app by default: run with -ts-proxy")
		}
	}
	if ts.Exited() {
		err = errors.Join(err, fmt.Errorf("tsapp exited during the run: %v\n%s", ts.Err(), proc.TailFile(ts.LogPath(), 20)))
	}
	return rs, err
}

// runScenarios runs the warm-up and then each selected scenario on one node.
func runScenarios(ctx context.Context, e *env, n int, d time.Duration) ([]*Result, error) {
	e.sampler = startSampler(e.cairn.proc.Pid(), 50*time.Millisecond)
	defer e.sampler.close()
	e.split = &cpuSplit{}
	defer e.split.abort()
	if e.opts.warmup > 0 {
		logf("%s: warm-up with %d events", e.app, e.opts.warmup)
		w := runBurst(ctx, e, e.opts.warmup, 1)
		if w.Error != "" || w.Completed != e.opts.warmup {
			w.Scenario = "warm-up"
			return []*Result{w}, fmt.Errorf("warm-up failed: %d/%d runs completed: %s", w.Completed, e.opts.warmup, w.Error)
		}
	}
	// Cairn's own idle cost (Raft heartbeats, timers), for context.
	idle := measureIdle(ctx, e.sampler, 2*time.Second)
	var out []*Result
	for _, s := range e.opts.scenarios {
		if ctx.Err() != nil {
			break
		}
		if s == "flow" {
			if e.flow == nil {
				logf("%s: the flow scenario needs the Go app; skipped", e.app)
				continue
			}
			rs := runFlow(ctx, e)
			stop := false
			for _, r := range rs {
				r.IdleCPUPct = idle
				stop = stop || (r.Error != "" && r.Flow != nil && !r.Flow.OnlyOverlaps)
			}
			out = append(out, rs...)
			if stop {
				break
			}
			continue
		}
		e.noteCrypto(nil) // count this scenario's calls only
		var r *Result
		switch s {
		case "burst":
			logf("%s: burst of %d events (%d senders)", e.app, n, e.opts.senders)
			r = runBurst(ctx, e, n, e.opts.senders)
		case "steady":
			logf("%s: steady %g events/s for %s", e.app, e.opts.rate, d)
			r = runSteady(ctx, e, e.opts.rate, d)
		case "sleep":
			if e.sleeper == nil {
				logf("%s: the sleep scenario needs the Go app; skipped", e.app)
				continue
			}
			r = runSleep(ctx, e)
		case "fair":
			if !isGoApp(e.app) {
				logf("%s: the fair scenario needs the Go app; skipped", e.app)
				continue
			}
			r = runFair(ctx, e)
		case "pit":
			logf("%s: pit: rebuilding the state at the last %d log indexes", e.app, pitRebuilds)
			r = runPit(ctx, e)
		}
		if p := r.Pit; p != nil {
			logf("%s: pit: best %.0f records/s (%.0f applying alone)%s", e.app, p.RecordsPerSec, p.ApplyRecordsPerSec, errSuffix(r.Error))
		} else if sr := r.Sleep; sr != nil && sr.MeasureOnly {
			logf("%s: sleep: %d registered in time, RSS while all sleep %.0f MiB%s",
				e.app, sr.Registered, sr.SleepingRSSMiB, errSuffix(r.Error))
		} else if sr != nil {
			logf("%s: sleep: %d registered in time, RSS sleeping %.0f MiB, %d woke, lateness p50 %s ms, p99 %s ms%s",
				e.app, sr.Registered, sr.SleepingRSSMiB, sr.Woke, num(sr.LatenessMs.P50), num(sr.LatenessMs.P99), errSuffix(r.Error))
		} else {
			logf("%s: %s: %d/%d runs completed in %.2fs, p50 %s ms, p99 %s ms%s", e.app, s, r.Completed, r.Events,
				r.WallSec, num(r.LatencyMs.P50), num(r.LatencyMs.P99), errSuffix(r.Error))
		}
		r.IdleCPUPct = idle
		e.noteCrypto(r)
		out = append(out, r)
		if r.Error != "" {
			break // the node is in an unknown state; don't pile on
		}
		// What Cairn keeps doing once the scenario's runs are done
		// (compactions, GC), which the next scenario would otherwise inherit.
		r.AfterCPUPct = measureIdle(ctx, e.sampler, 2*time.Second)
	}
	return out, ctx.Err()
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " — ERROR: " + strings.SplitN(e, "\n", 2)[0]
}

// measureIdle returns the CPU Cairn uses while nothing happens, in percent
// of one core.
func measureIdle(ctx context.Context, sm *sampler, d time.Duration) float64 {
	a := sm.sample()
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	b := sm.sample()
	sec := b.t.Sub(a.t).Seconds()
	if sec <= 0 || b.ticks < a.ticks {
		return 0
	}
	return float64(b.ticks-a.ticks) / proc.ClockTicks() / sec * 100
}
