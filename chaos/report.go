package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/internal/proc"
)

type report struct {
	cfg           *config
	started       time.Time
	finished      time.Time
	perf          []perfResult
	check         *checkResult
	faults        []faultRec
	terms         int
	termConflicts []string
	nodes         []*node
	notes         []string
	interrupted   bool
	fatal         string
	chaosDur      time.Duration
	chaosOps      []*opRec
	chaosApp      phaseStats
	logs          logComparison
}

// documented503 are the 503 codes a client must expect during failover.
var documented503 = map[string]bool{"outcome_unknown": true, "not_leader": true, "no_leader": true, "shutting_down": true}

type verdict struct {
	name  string
	value string
	pass  bool
}

type logSummary struct {
	node          string
	starts        int
	warn, errs    int
	panics        []string
	topErrors     []string
	unexpectedEnd []string
}

var msgRe = regexp.MustCompile(`msg="((?:[^"\\]|\\.)*)"|msg=(\S+)`)

func summarizeLog(n *node) logSummary {
	s := logSummary{node: n.id, starts: n.starts, unexpectedEnd: n.unexpectedExits()}
	f, err := os.Open(n.logPath)
	if err != nil {
		return s
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.Contains(l, "level=ERROR"):
			s.errs++
			counts["ERROR "+normMsg(l)]++
		case strings.Contains(l, "level=WARN"):
			s.warn++
			counts["WARN "+normMsg(l)]++
		}
		if strings.Contains(l, "panic:") || strings.Contains(l, "fatal error:") {
			if len(s.panics) < 5 {
				s.panics = append(s.panics, l)
			}
		}
	}
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range counts {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || (all[i].v == all[j].v && all[i].k < all[j].k) })
	for i := 0; i < len(all) && i < 12; i++ {
		s.topErrors = append(s.topErrors, fmt.Sprintf("%6d  %s", all[i].v, all[i].k))
	}
	return s
}

var numRe = regexp.MustCompile(`[0-9a-f]{16,}|[0-9A-Z]{26}|\d+(\.\d+)?(ms|s|µs)?|127\.0\.0\.1:\d+|10\.201\.77\.\d+:\d+`)

// normMsg reduces a log line to its message with ids and numbers masked.
func normMsg(l string) string {
	m := msgRe.FindStringSubmatch(l)
	msg := l
	if m != nil {
		msg = m[1] + m[2]
	}
	// hclog lines embed their own timestamp and level.
	if i := strings.Index(msg, "]  "); i >= 0 {
		msg = msg[i+3:]
	}
	msg = numRe.ReplaceAllString(msg, "N")
	if len(msg) > 140 {
		msg = msg[:140] + "..."
	}
	return msg
}

func (r *report) verdicts() []verdict {
	var v []verdict
	add := func(name string, pass bool, format string, args ...any) {
		v = append(v, verdict{name, fmt.Sprintf(format, args...), pass})
	}
	if r.fatal != "" {
		add("harness completed", false, "%s", firstLine(r.fatal))
		return v
	}
	c := r.check
	add("I1 lost acknowledged events", len(c.Lost) == 0, "%d", len(c.Lost))
	add("I1 acknowledged events without a run", len(c.NoRun) == 0, "%d", len(c.NoRun))
	add("I2 events that started more than one run", len(c.MultiRun) == 0, "%d", len(c.MultiRun))
	add("I3 duplicate accepted step results", len(c.DupAccepted) == 0, "%d", len(c.DupAccepted))
	add("I4 memoization mismatches (input/output/journal)", len(c.MemoMismatch)+len(c.UnjournaledAcc) == 0, "%d", len(c.MemoMismatch)+len(c.UnjournaledAcc))
	add("I5 stuck runs after quiescence", len(c.Stuck) == 0, "%d (waited %s)", len(c.Stuck), fmtDur(c.QuietWaited))
	add("runs failed/cancelled (the app never fails)", len(c.Failed) == 0, "%d", len(c.Failed))
	add("duplicate app executions <= claims open at fault times", c.DupExecutions <= c.ClaimsAtFaults,
		"%d <= %d (%d with no claim of the run open at a fault)", c.DupExecutions, c.ClaimsAtFaults, len(c.Unexplained))
	conv := "same applied index, log digest and state digest on every node"
	if !c.Conv.OK {
		conv = fmt.Sprintf("%s: applied %v state %v", c.Conv.Note, c.Conv.Applied, c.Conv.State)
	}
	add("I8 replica convergence", c.Conv.OK, "%s", conv)
	add("I9 two leaders in one term (observed by polling)", len(r.termConflicts) == 0, "%d", len(r.termConflicts))
	if r.logs.Err != "" {
		add("I8/I9 raft logs identical on every node", false, "cannot read: %s", r.logs.Err)
	} else {
		add("I8/I9 raft logs identical on every node", r.logs.Diffs == 0,
			"%d differing indexes in %d..%d (%d with the same term: Log Matching violated)", r.logs.Diffs, r.logs.From, r.logs.To, r.logs.SameTerm)
	}
	unexpected, panics := 0, 0
	for _, n := range r.nodes {
		unexpected += len(n.unexpectedExits())
		_, p := grepFile(n.logPath, 0, "panic:", "fatal error:")
		panics += p
	}
	add("I10 unexpected node exits / panics", unexpected+panics == 0, "%d / %d", unexpected, panics)
	odd := 0
	for k, n := range c.Codes {
		if (strings.HasPrefix(k, "5") && !strings.HasPrefix(k, "503 ")) ||
			(strings.HasPrefix(k, "503 ") && !documented503[strings.TrimPrefix(k, "503 ")]) || strings.HasPrefix(k, "4") {
			odd += n
		}
	}
	add("I10 API answers other than 200 and documented 503s", odd == 0, "%d", odd)
	if r.cfg.scenario == "sigstop" || strings.HasPrefix(r.cfg.scenario, "partition") {
		add("acks from the paused/isolated node after grace", len(c.AckFromIsolated) == 0, "%d", len(c.AckFromIsolated))
	}
	problems := 0
	failovers := 0
	for _, f := range r.faults {
		if f.Problem != "" && !strings.HasPrefix(f.Problem, "slow catch-up") {
			problems++
		}
		if f.WasLeader && !f.FailoverOK && f.Start > 0 {
			failovers++
		}
	}
	add("fault cycles with a problem (no new leader, node did not come back)", problems == 0, "%d of %d", problems, len(r.faults))
	add("client ops never acknowledged (after retries + resolution)", c.Fail+c.Unknown-c.Resolved == 0,
		"%d (fail %d, unknown %d, resolved after heal %d)", c.Fail+c.Unknown-c.Resolved, c.Fail, c.Unknown, c.Resolved)
	return v
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (r *report) failover() (all durs) {
	for _, f := range r.faults {
		if f.WasLeader && f.FailoverOK {
			all = append(all, time.Duration(f.FailoverMs)*time.Millisecond)
		}
	}
	return all
}

func gitDescribe(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	if st, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); len(st) > 0 {
		rev += " (dirty)"
	}
	return rev
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// write writes the markdown report; it returns whether every check passed.
func (r *report) write() bool {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	cfg := r.cfg
	pass := true
	vs := r.verdicts()
	for _, v := range vs {
		pass = pass && v.pass
	}
	if r.interrupted {
		pass = false
	}
	p("# Cairn chaos report: %s\n\n", cfg.scenario)
	verdict := "PASS"
	if !pass {
		verdict = "FAIL"
	}
	p("**Verdict: %s**", verdict)
	if r.interrupted {
		p(" (interrupted)")
	}
	p("\n\n")
	p("| | |\n|---|---|\n")
	p("| date | %s (%s) |\n", r.started.Format(time.RFC3339), fmtDur(r.finished.Sub(r.started).Round(time.Second)))
	p("| commit | %s |\n", gitDescribe(cfg.root))
	p("| machine | %d CPUs, kernel %s, %s |\n", runtime.NumCPU(), kernel(), runtime.Version())
	p("| scenario | `%s`, %d fault cycles requested, %d done |\n", cfg.scenario, cfg.kills, len(r.faults))
	p("| load | %.0f events/s to random nodes, unique user ids, retries with the same id (per attempt 5s, give up %s) |\n", cfg.rate, cfg.giveUp)
	p("| cairn | `--call-timeout %s` (lease %s), `--max-inflight` %s, GOMAXPROCS %s |\n", cfg.callTimeout, cfg.callTimeout+10*time.Second, gmp(cfg.maxInflight), gmp(cfg.gomaxprocs))
	p("| timing | interval %s ± %s, down %s, sigstop %s..%s, partition %s |\n", cfg.interval, cfg.jitter, cfg.down, cfg.stopMin, cfg.stopMax, cfg.partitionFor)
	p("| seed | %d |\n", cfg.seed)
	p("| command | `go run ./chaos %s` |\n", strings.Join(os.Args[1:], " "))
	p("\n")
	if r.fatal != "" {
		p("## Harness error\n\n```\n%s\n```\n\n", r.fatal)
		for _, n := range r.nodes {
			p("### %s log tail\n\n```\n%s\n```\n\n", n.id, proc.TailFile(n.logPath, 40))
		}
		r.save(b.String())
		return false
	}
	c := r.check

	p("## Invariants\n\n| check | result | value |\n|---|---|---|\n")
	for _, v := range vs {
		res := "ok"
		if !v.pass {
			res = "**FAIL**"
		}
		p("| %s | %s | %s |\n", v.name, res, v.value)
	}
	p("\n")

	p("## Figures\n\n| figure | value |\n|---|---|\n")
	p("| client ops (cluster phases) | %d: ok %d, fail %d, unknown %d; %d attempts |\n", c.Ops, c.OK, c.Fail, c.Unknown, c.Attempts)
	p("| runs completed | %d |\n", c.Completed)
	p("| accepted step results / app step executions | %d / %d |\n", c.DistinctStepsAccepted(), c.Executions)
	pct := 0.0
	if c.DistinctSteps > 0 {
		pct = 100 * float64(c.DupExecutions) / float64(c.DistinctSteps)
	}
	p("| **duplicate app executions** | %d (%.2f%% of steps, max %d executions of one step) |\n", c.DupExecutions, pct, c.MaxExecPerStep)
	p("| claims open at a fault time (bound) | %d |\n", c.ClaimsAtFaults)
	p("| claims / re-sent claims (lease ran out or takeover) | %d / %d |\n", c.Claims, c.Resent)
	p("| fenced answers (`result.stale`) / refused repeats (`step.duplicate`) | %d / %d |\n", c.StaleResults, c.StepDupEntries)
	fo := r.failover()
	p("| **failover** (fault → first write acknowledged by a survivor), p50 / p99 / max | %s (%d leader faults) |\n", fo.triple(), len(fo))
	var healthy, catch durs
	for _, f := range r.faults {
		if f.HealthyMs > 0 {
			healthy = append(healthy, time.Duration(f.HealthyMs)*time.Millisecond)
		}
		if f.CatchUpMs > 0 {
			catch = append(catch, time.Duration(f.CatchUpMs)*time.Millisecond)
		}
	}
	resume, unresumed := resumeAll(c.Resume)
	p("| **in-flight runs resume after a leader fault** (fault → the next accepted result of a run whose call was out on that leader), p50 / p99 / max | %s (%d runs over %d leader faults; %d never moved again) |\n",
		resume.triple(), len(resume), len(c.Resume), unresumed)
	p("| healed node healthy (knows a leader), p50 / p99 / max | %s |\n", healthy.triple())
	p("| healed node caught up with the leader's commit index, p50 / p99 / max | %s |\n", catch.triple())
	p("| leadership terms observed (polling every 500 ms) | %d |\n", r.terms)
	p("| final applied index per node | %v |\n", c.Conv.Applied)
	var chaosAck durs
	chaosOK := 0
	for _, op := range r.chaosOps {
		if op.Outcome == "ok" {
			chaosOK++
			chaosAck = append(chaosAck, time.Duration(op.LatUs)*time.Microsecond)
		}
	}
	if r.chaosDur > 0 {
		p("| chaos phase | %s, %d events acknowledged (%.1f/s), ack latency incl. retries p50 / p99 / max %s |\n",
			fmtDur(r.chaosDur.Round(time.Second)), chaosOK, float64(chaosOK)/r.chaosDur.Seconds(), chaosAck.triple())
		p("| chaos phase: run latency (event sent → last call answered), p50 / p99 / max | %s |\n", r.chaosApp.e2e.triple())
		p("| chaos phase: step hop (step answered → next call), p50 / p99 / max | %s |\n", r.chaosApp.hops.triple())
	}
	p("\n")

	p("### Client attempt outcomes\n\n| outcome | attempts |\n|---|---|\n")
	var keys []string
	for k := range c.Codes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return c.Codes[keys[i]] > c.Codes[keys[j]] })
	for _, k := range keys {
		p("| %s | %d |\n", k, c.Codes[k])
	}
	p("\n")

	if len(r.perf) > 0 {
		p("## Cluster vs single node (same load, no faults)\n\n")
		p("Steady: %.0f events/s for %s. Burst: %d events from %d concurrent senders. Events go to a random node "+
			"(a follower proxies writes to the leader). Run = event sent → app answered the run's last call; step hop = "+
			"app answered a step (206) → the next call of that run arrived (commit + apply + dispatch). CPU = all cairn processes; "+
			"per step: their CPU, Raft entries appended, and log fsyncs of all nodes.\n\n",
			cfg.rate, cfg.perfDuration, cfg.burst, cfg.senders)
		p("| deployment | phase | acked/sent | runs done | runs/s (all) | runs/s (to 99%%) | steps/s | ack p50 / p99 | run p50 / p99 | step hop p50 / p99 | CPU s | per step: CPU; entries / fsyncs |\n")
		p("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, x := range r.perf {
			p("| %s | %s | %d/%d | %d | %.1f | %.1f | %.1f | %s / %s | %s / %s | %s / %s | %.1f | %s |\n", x.Target, x.Phase, x.Ack, x.Sent, x.Completed,
				x.RunsPerSec, x.Runs99, x.StepsPerS, fmtDur(x.Ack50.pct(50)), fmtDur(x.Ack50.pct(99)), fmtDur(x.E2E.pct(50)), fmtDur(x.E2E.pct(99)),
				fmtDur(x.Hops.pct(50)), fmtDur(x.Hops.pct(99)), x.CPUSec, x.perStep())
		}
		for _, x := range r.perf {
			if x.Note != "" {
				p("\n**%s, %s: %s.**", x.Target, x.Phase, strings.TrimPrefix(x.Note, "; "))
				if len(x.Slow) > 0 {
					p(" Slowest:\n\n")
				} else {
					p("\n")
				}
				for i, s := range x.Slow {
					if i >= 3 {
						break
					}
					p("Run `%s` took %s:\n\n```\n%s```\n\n", s.Run, fmtDur(s.E2E), fmtHist(s.Hist))
				}
			}
		}
		p("\n")
	}

	p("## Faults\n\n")
	p("Every cycle is in `nemesis.jsonl`. Problems:\n\n")
	np := 0
	for _, f := range r.faults {
		if f.Problem != "" {
			np++
			if np <= 20 {
				p("- #%d %s %s at %s: %s %s\n", f.N, f.Kind, f.Node, time.UnixMilli(f.Start).Format("15:04:05.000"), f.Problem, f.Note)
			}
		}
	}
	if np == 0 {
		p("- none\n")
	}
	resumeOf := map[int]faultResume{}
	for _, fr := range c.Resume {
		resumeOf[fr.N] = fr
	}
	p("\n| # | kind | node | leader | at | failover | in-flight runs resume (max, runs) | new leader | healthy | caught up | note |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, f := range r.faults {
		if i >= 15 && i < len(r.faults)-5 {
			if i == 15 {
				p("| ... | | | | | | | | | | |\n")
			}
			continue
		}
		fo, rs := "", ""
		if f.WasLeader {
			fo = fmtDur(time.Duration(f.FailoverMs) * time.Millisecond)
			if fr, ok := resumeOf[f.N]; ok {
				rs = fmt.Sprintf("%s (%d)", fmtDur(fr.max()), len(fr.Runs))
				if len(fr.Unresumed) > 0 {
					rs += fmt.Sprintf(", %d never", len(fr.Unresumed))
				}
			}
		}
		p("| %d | %s | %s | %v | %s | %s | %s | %s | %s | %s | %s |\n", f.N, f.Kind, f.Node, f.WasLeader,
			time.UnixMilli(f.Start).Format("15:04:05"), fo, rs, f.NewLeader, fmtDur(time.Duration(f.HealthyMs)*time.Millisecond),
			fmtDur(time.Duration(f.CatchUpMs)*time.Millisecond), f.Note)
	}
	p("\n")

	// Evidence.
	if vio := r.evidence(); vio != "" {
		p("## Evidence\n\n%s\n", vio)
	}

	p("## Node logs\n\n")
	for _, n := range r.nodes {
		s := summarizeLog(n)
		p("### %s: %d starts, %d WARN, %d ERROR lines (`logs/%s`)\n\n", s.node, s.starts, s.warn, s.errs, filepath.Base(n.logPath))
		for _, e := range s.unexpectedEnd {
			p("- **%s**\n", e)
		}
		for _, e := range s.panics {
			p("- **panic**: `%s`\n", e)
		}
		if len(s.topErrors) > 0 {
			p("\n```\n%s\n```\n\n", strings.Join(s.topErrors, "\n"))
		}
	}
	if len(r.notes) > 0 {
		p("## Notes\n\n")
		for _, n := range r.notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	p("## Files\n\n`%s`: `history.jsonl` (every client op and attempt), `journal.jsonl` (every step execution, fsynced), "+
		"`nemesis.jsonl` (fault timeline), `logs/` (node logs, restarts marked `=== chaos:`).\n", cfg.outDir)
	r.save(b.String())
	return pass
}

func gmp(n int) string {
	if n <= 0 {
		return "default"
	}
	return fmt.Sprint(n)
}

// DistinctStepsAccepted is the number of accepted step results (3 per completed run).
func (c *checkResult) DistinctStepsAccepted() int { return c.Completed * len(stepIDs) }

func (r *report) evidence() string {
	c := r.check
	var b strings.Builder
	list := func(title string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(&b, "### %s (%d)\n\n", title, len(items))
		for i, it := range items {
			if i >= 20 {
				fmt.Fprintf(&b, "- ... %d more\n", len(items)-20)
				break
			}
			fmt.Fprintf(&b, "- %s\n", it)
		}
		b.WriteString("\n")
	}
	evs := func(es []*evState) []string {
		var out []string
		for _, e := range es {
			var runs []string
			for _, r := range e.runs {
				runs = append(runs, r.ID+":"+r.Status)
			}
			last := e.op.Attempts[len(e.op.Attempts)-1]
			out = append(out, fmt.Sprintf("uid %s event %s (%s; acked via %s at %s after %d attempts) runs %v %s", e.op.UID, e.eventID,
				e.op.Outcome, last.Node, time.UnixMilli(last.At).Format("15:04:05.000"), len(e.op.Attempts), runs, e.err))
		}
		return out
	}
	list("Lost acknowledged events", evs(c.Lost))
	list("Acknowledged events without a run", evs(c.NoRun))
	list("Events with several runs", evs(c.MultiRun))
	list("Stuck runs", evs(c.Stuck))
	list("Failed runs", evs(c.Failed))
	list("Duplicate accepted step results", c.DupAccepted)
	list("Memoization mismatches", c.MemoMismatch)
	list("Accepted results the app never produced", c.UnjournaledAcc)
	list("Duplicate executions with no claim open at a fault", c.Unexplained)
	list("Acknowledgements from a paused/isolated node", c.AckFromIsolated)
	list("Two leaders in one term", r.termConflicts)
	list(fmt.Sprintf("Raft log differences (node ranges %v)", r.logs.Ranges), r.logs.Samples)
	if len(c.PerNodeMissing) > 0 {
		var rows []string
		for _, n := range r.nodes {
			m := c.PerNodeMissing[n.id]
			ex := ""
			if len(m) > 0 {
				ex = " e.g. " + strings.Join(m[:min(len(m), 5)], ", ")
			}
			rows = append(rows, fmt.Sprintf("%s: %d acknowledged events unknown to its local projection%s", n.id, len(m), ex))
		}
		list("Acknowledged events per node (local reads, nodes diverged)", rows)
	}
	if len(c.SampleHistories) > 0 {
		b.WriteString("### Run histories (samples)\n\n")
		var ids []string
		for id := range c.SampleHistories {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			fmt.Fprintf(&b, "Run `%s`:\n\n```\n%s```\n\n", id, fmtHist(c.SampleHistories[id]))
		}
	}
	return b.String()
}

func short(s string) string {
	if len(s) == 40 {
		return s[:8]
	}
	return s
}

func (r *report) save(s string) {
	if err := os.WriteFile(r.cfg.report, []byte(s), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: writing report: %v\n", err)
	}
	latest := filepath.Join(r.cfg.root, "chaos", "out", "report.md")
	if latest != r.cfg.report {
		_ = os.WriteFile(latest, []byte(s), 0o644)
	}
}

// summary is what is printed at the end.
func (r *report) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "== chaos %s: ", r.cfg.scenario)
	pass := true
	for _, v := range r.verdicts() {
		pass = pass && v.pass
	}
	if pass && !r.interrupted {
		b.WriteString("PASS\n")
	} else {
		b.WriteString("FAIL\n")
	}
	for _, v := range r.verdicts() {
		mark := "  ok  "
		if !v.pass {
			mark = "  FAIL"
		}
		fmt.Fprintf(&b, "%s %-62s %s\n", mark, v.name, v.value)
	}
	if r.check != nil {
		c := r.check
		fmt.Fprintf(&b, "  duplicate app executions: %d (bound: %d claims open at fault times)\n", c.DupExecutions, c.ClaimsAtFaults)
		fmt.Fprintf(&b, "  failover p50/p99/max: %s over %d leader faults\n", r.failover().triple(), len(r.failover()))
		resume, unresumed := resumeAll(c.Resume)
		fmt.Fprintf(&b, "  in-flight runs resume after a leader fault p50/max: %s / %s (%d runs over %d leader faults, %d never moved again)\n",
			fmtDur(resume.pct(50)), fmtDur(resume.max()), len(resume), len(c.Resume), unresumed)
	}
	for _, x := range r.perf {
		fmt.Fprintf(&b, "  %-24s %-6s %6.1f runs/s (%.1f to 99%%), run p50/p99 %s/%s, step hop p50/p99 %s/%s, ack p50/p99 %s/%s\n", x.Target, x.Phase, x.RunsPerSec, x.Runs99,
			fmtDur(x.E2E.pct(50)), fmtDur(x.E2E.pct(99)), fmtDur(x.Hops.pct(50)), fmtDur(x.Hops.pct(99)),
			fmtDur(x.Ack50.pct(50)), fmtDur(x.Ack50.pct(99)))
	}
	return b.String()
}

// fmtHist renders a run history one entry a line.
func fmtHist(hh []histEntry) string {
	var b strings.Builder
	for _, h := range hh {
		data := ""
		if len(h.Data) > 0 {
			d, _ := json.Marshal(h.Data)
			data = string(d)
			if len(data) > 120 {
				data = data[:120] + "..."
			}
		}
		fmt.Fprintf(&b, "%4d idx=%-7d %s %-16s call=%s att=%d %s %s\n", h.Seq, h.Index, time.UnixMilli(h.At).Format("15:04:05.000"),
			h.Type, short(h.Call), h.Attempt, short(h.Detail), data)
	}
	return b.String()
}

// grepFile returns lines of path containing any of the needles (at most keep),
// and the total count.
func grepFile(path string, keep int, needles ...string) ([]string, int) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0
	}
	defer f.Close()
	var out []string
	total := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		l := sc.Text()
		for _, nd := range needles {
			if strings.Contains(l, nd) {
				total++
				if len(out) < keep {
					out = append(out, l)
				}
				break
			}
		}
	}
	return out, total
}
