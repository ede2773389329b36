package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
)

// Pct summarizes a sample.
type Pct struct {
	N   int     `json:"n"`
	Min float64 `json:"min"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// percentiles uses the nearest-rank method.
func percentiles(v []float64) Pct {
	if len(v) == 0 {
		return Pct{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return Pct{N: len(s), Min: s[0], P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1]}
}

// Result is one scenario of one app mode.
type Result struct {
	App     string `json:"app"`
	Mode    string `json:"mode"`              // dev or production (-production)
	Archive string `json:"archive,omitempty"` // on or off (-archive)
	// Checkpointing is on or off (-checkpointing; off = cairn --no-checkpointing).
	Checkpointing string `json:"checkpointing,omitempty"`
	Scenario      string `json:"scenario"`
	Offered       string `json:"offered"`

	Events     int     `json:"events_sent"`
	SendErrors int     `json:"send_errors"`
	Completed  int     `json:"runs_completed"`
	Failed     int     `json:"runs_failed"`
	Unfinished int     `json:"runs_unfinished"`
	Steps      int     `json:"steps"`
	WallSec    float64 `json:"wall_sec"`

	// SendSec is first send → last event accepted; EventsPerSec the events
	// accepted per second over it. A burst's senders wait for each answer
	// (a Raft commit), so -senders / accept latency bounds this rate.
	SendSec      float64 `json:"send_sec,omitempty"`
	EventsPerSec float64 `json:"events_accepted_per_sec,omitempty"`
	RunsPerSec   float64 `json:"runs_per_sec"`
	StepsPerSec  float64 `json:"steps_per_sec"`
	LatencyMs    Pct     `json:"event_to_completion_ms"`
	AcceptMs     Pct     `json:"event_accept_ms"`
	HopMs        Pct     `json:"step_hop_overhead_ms"`
	CallsPerRun  float64 `json:"app_calls_per_run"`
	AppCalls     int64   `json:"app_calls_seen"`
	// Async checkpointing: the Go app's checkpoint POSTs (every try), and
	// the HTTP requests per run (app calls + checkpoint POSTs).
	CheckpointPosts   int64   `json:"checkpoint_posts"`
	CheckpointsPerRun float64 `json:"checkpoint_posts_per_run"`
	RequestsPerRun    float64 `json:"http_requests_per_run"`
	// The app's CPU per step (AppCPUSource says what it covers), and for
	// the Go apps their 3-step handlers' time per step, checkpoint waits
	// excluded.
	AppCPUMsPerStep  float64 `json:"app_cpu_ms_per_step"`
	AppCPUSource     string  `json:"app_cpu_source,omitempty"`
	HandlerMsPerStep float64 `json:"go_handler_ms_per_step,omitempty"`
	// The bench process's CPU per step (getrusage) and its parts
	// (cpusplit.go): the load generator (event senders, status polls,
	// /proc samplers), the TS app's proxies; the Go apps' part is
	// AppCPUMsPerStep. Unlabelled CPU (GC workers) is spread over the parts.
	BenchCPUMsPerStep   float64 `json:"bench_process_cpu_ms_per_step"`
	LoadGenCPUMsPerStep float64 `json:"load_generator_cpu_ms_per_step"`
	ProxyCPUMsPerStep   float64 `json:"proxy_cpu_ms_per_step,omitempty"`
	BenchUnlabelled     float64 `json:"bench_cpu_unlabelled_share"`
	BenchProfileSamples int     `json:"bench_cpu_profile_samples"`
	// The machine's CPU over the same window, in % of all its cores: busy
	// (every process), and what processes other than Cairn, the bench and
	// the TS app took (other jobs on a shared box).
	MachineBusyPct float64 `json:"machine_cpu_busy_pct"`
	OtherCPUPct    float64 `json:"other_processes_cpu_pct"`

	CPUSec        float64 `json:"cairn_cpu_sec"`
	CPUSecPerStep float64 `json:"cairn_cpu_sec_per_step"`
	IdleCPUPct    float64 `json:"cairn_idle_cpu_pct_of_core"`
	AfterCPUPct   float64 `json:"cairn_cpu_pct_of_core_2s_after"`
	PeakRSSMiB    float64 `json:"cairn_peak_rss_mib"`
	PeakRSSSource string  `json:"cairn_peak_rss_source"`
	EndRSSMiB     float64 `json:"cairn_end_rss_mib"`

	RaftBytes        int64   `json:"raft_dir_growth_bytes"`
	RaftAllocBytes   int64   `json:"raft_dir_growth_allocated_bytes"`
	RaftBytesPerStep float64 `json:"raft_bytes_per_step"`
	LogEntries       uint64  `json:"raft_log_entries"`
	EntriesPerStep   float64 `json:"raft_entries_per_step"`
	BytesPerEntry    float64 `json:"raft_bytes_per_entry"`
	// LogSyncs is the log's synced writes (fsyncs) in the scenario:
	// Raft writes the entries queued at once in one.
	LogSyncs     uint64  `json:"raft_log_syncs"`
	SyncsPerStep float64 `json:"raft_log_syncs_per_step"`
	// CommitHolds is the entries that waited for more proposals to share
	// their commit (cairn --commit-delay).
	CommitHolds uint64 `json:"raft_commit_holds"`
	FSMBytes    int64  `json:"fsm_dir_growth_bytes"`
	// ArchiveBytes is the growth of the archive (segments and manifest).
	ArchiveBytes        int64   `json:"archive_dir_growth_bytes"`
	ArchiveBytesPerStep float64 `json:"archive_bytes_per_step"`
	// ArchiveBytesPerEntry is the archive's bytes over the entries it
	// holds (all of them so far): times entries per step, it is what a step
	// costs the archive once everything is compacted, whatever part of the
	// scenario's entries compaction reached before it ended.
	ArchiveBytesPerEntry float64 `json:"archive_bytes_per_entry"`

	// Production mode, Go app: its verify + sign time per call (bench
	// process, not Cairn's CPU).
	AppCryptoUsPerCall float64 `json:"go_app_verify_sign_us_per_call,omitempty"`

	Sleep *SleepResult `json:"sleep,omitempty"` // the sleep scenario's own figures
	Flow  *FlowResult  `json:"flow,omitempty"`  // the flow scenario's own figures
	Fair  *FairResult  `json:"fair,omitempty"`  // the fair scenario's own figures (the rest is the unrelated function's)
	Pit   *PitResult   `json:"pit,omitempty"`   // the pit scenario's own figures

	Polls         int      `json:"status_polls"`
	CairnWarnings int      `json:"cairn_log_warnings"`
	Notes         []string `json:"notes,omitempty"`
	Error         string   `json:"error,omitempty"`
}

// Report is the whole run.
type Report struct {
	StartedAt  string    `json:"started_at"`
	Command    string    `json:"command"`
	GoVersion  string    `json:"go_version"`
	CPUs       int       `json:"cpus"`
	ClockTicks float64   `json:"clock_ticks_per_sec"`
	LoadAvg    string    `json:"loadavg_at_start"`
	Results    []*Result `json:"results"`
	Errors     []string  `json:"errors,omitempty"`

	Comparison        []Comparison        `json:"dev_vs_production,omitempty"`       // -production=both
	ArchiveComparison []ArchiveComparison `json:"archive_off_vs_on,omitempty"`       // -archive=both
	CkptComparison    []CkptComparison    `json:"checkpointing_off_vs_on,omitempty"` // -checkpointing=both
	SDKComparison     []SDKComparison     `json:"go_sdk_vs_raw,omitempty"`           // -app go,raw
}

func mib(b int64) string {
	return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20))
}

func pctCell(p Pct, unit string) string {
	if p.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%s / %s", num(p.P50), num(p.P99)+unit)
}

// perCore is the steps/s one core gives at ms of CPU per step.
func perCore(ms float64) string {
	if ms <= 0 || math.IsInf(ms, 0) || math.IsNaN(ms) {
		return "-"
	}
	return fmt.Sprintf("%.0f", 1000/ms)
}

func num(f float64) string {
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}

// printReport writes the table: one column per app/scenario.
func printReport(w io.Writer, rep *Report) {
	var rs, sleeps, flows, pits []*Result
	for _, r := range rep.Results {
		switch {
		case r.Pit != nil:
			pits = append(pits, r)
		case r.Sleep != nil:
			sleeps = append(sleeps, r)
		case r.Flow != nil:
			flows = append(flows, r)
		default:
			rs = append(rs, r)
		}
	}
	fmt.Fprintf(w, "\nCairn benchmark  (%s, %d CPUs, load at start %s)\n\n", rep.StartedAt, rep.CPUs, rep.LoadAvg)
	if len(rep.Results) == 0 {
		fmt.Fprintln(w, "no results")
	}
	if len(sleeps) > 0 {
		printSleepTable(w, sleeps)
		if len(rs)+len(flows) > 0 {
			fmt.Fprintln(w)
		}
	}
	if len(pits) > 0 {
		printPitTable(w, pits)
		if len(rs)+len(flows) > 0 {
			fmt.Fprintln(w)
		}
	}
	if len(flows) > 0 {
		printFlowTable(w, flows)
		if len(rs) > 0 {
			fmt.Fprintln(w)
		}
	}
	if len(rs) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		row := func(label string, cell func(r *Result) string) {
			fmt.Fprint(tw, label+"\t")
			for _, r := range rs {
				fmt.Fprint(tw, cell(r)+"\t")
			}
			fmt.Fprintln(tw)
		}
		row("", func(r *Result) string { return r.label() })
		row("load offered", func(r *Result) string { return r.Offered })
		row("events accepted (send errors)", func(r *Result) string { return fmt.Sprintf("%d (%d)", r.Events, r.SendErrors) })
		row("runs completed / failed / unfinished", func(r *Result) string {
			return fmt.Sprintf("%d / %d / %d", r.Completed, r.Failed, r.Unfinished)
		})
		row("wall: first send → last completion", func(r *Result) string { return fmt.Sprintf("%.2f s", r.WallSec) })
		row("runs/s", func(r *Result) string { return num(r.RunsPerSec) })
		row("steps/s (3 per run)", func(r *Result) string { return num(r.StepsPerSec) })
		row("event→completion p50 / p99", func(r *Result) string { return pctCell(r.LatencyMs, " ms") })
		row("event→completion max", func(r *Result) string { return fmt.Sprintf("%s ms", num(r.LatencyMs.Max)) })
		row("event accept (POST /e) p50 / p99", func(r *Result) string { return pctCell(r.AcceptMs, " ms") })
		row("events accepted/s (first send → last accepted)", func(r *Result) string {
			return fmt.Sprintf("%s (%.2f s)", num(r.EventsPerSec), r.SendSec)
		})
		row("step hop overhead p50 / p99 (app side)", func(r *Result) string { return pctCell(r.HopMs, " ms") })
		row("step hops measured", func(r *Result) string { return fmt.Sprint(r.HopMs.N) })
		row("app calls per run", func(r *Result) string { return num(r.CallsPerRun) })
		row("checkpoint POSTs per run (app → Cairn)", func(r *Result) string { return num(r.CheckpointsPerRun) })
		row("HTTP requests per run (calls + ckpt)", func(r *Result) string { return num(r.RequestsPerRun) })
		row("Cairn CPU", func(r *Result) string { return fmt.Sprintf("%.2f s", r.CPUSec) })
		row("Cairn CPU per step", func(r *Result) string { return fmt.Sprintf("%.3f ms", r.CPUSecPerStep*1000) })
		row("app CPU per step (go/raw: SDK app/raw handler)", func(r *Result) string { return fmt.Sprintf("%.3f ms", r.AppCPUMsPerStep) })
		row("load generator CPU per step (ts: + proxies)", func(r *Result) string {
			if r.ProxyCPUMsPerStep > 0 {
				return fmt.Sprintf("%.3f + %.3f ms", r.LoadGenCPUMsPerStep, r.ProxyCPUMsPerStep)
			}
			return fmt.Sprintf("%.3f ms", r.LoadGenCPUMsPerStep)
		})
		row("bench process CPU per step (getrusage)", func(r *Result) string { return fmt.Sprintf("%.3f ms", r.BenchCPUMsPerStep) })
		row("projected steps/s per core: Cairn / app", func(r *Result) string {
			return perCore(r.CPUSecPerStep*1000) + " / " + perCore(r.AppCPUMsPerStep)
		})
		row(fmt.Sprintf("machine CPU busy: all / other processes (%% of %d cores)", rep.CPUs), func(r *Result) string {
			return fmt.Sprintf("%.0f%% / %.0f%%", r.MachineBusyPct, r.OtherCPUPct)
		})
		row(fmt.Sprintf("projected steps/s, all parts on %d cores", rep.CPUs), func(r *Result) string {
			return perCore((r.CPUSecPerStep*1000 + r.AppCPUMsPerStep + r.LoadGenCPUMsPerStep + r.ProxyCPUMsPerStep) / float64(rep.CPUs))
		})
		row("Cairn idle CPU (before scenarios)", func(r *Result) string { return fmt.Sprintf("%.1f%% of a core", r.IdleCPUPct) })
		row("Cairn CPU in the 2 s after", func(r *Result) string { return fmt.Sprintf("%.1f%% of a core", r.AfterCPUPct) })
		row("Cairn peak RSS (VmHWM)", func(r *Result) string { return fmt.Sprintf("%.1f MiB", r.PeakRSSMiB) })
		row("Cairn RSS at end", func(r *Result) string { return fmt.Sprintf("%.1f MiB", r.EndRSSMiB) })
		row("raft/ growth (apparent)", func(r *Result) string { return mib(r.RaftBytes) })
		row("raft/ growth (allocated, du)", func(r *Result) string { return mib(r.RaftAllocBytes) })
		row("log bytes per step", func(r *Result) string { return fmt.Sprintf("%.0f B", r.RaftBytesPerStep) })
		row("raft entries (Δ last_log_index)", func(r *Result) string { return fmt.Sprint(r.LogEntries) })
		row("raft entries per step", func(r *Result) string { return num(r.EntriesPerStep) })
		row("bytes per raft entry", func(r *Result) string { return fmt.Sprintf("%.0f B", r.BytesPerEntry) })
		row("log fsyncs (Δ raft.log_syncs), per step", func(r *Result) string {
			return fmt.Sprintf("%d, %s", r.LogSyncs, num(r.SyncsPerStep))
		})
		row("entries held for others (Δ raft.commit_holds)", func(r *Result) string { return fmt.Sprint(r.CommitHolds) })
		row("fsm/ growth (apparent)", func(r *Result) string { return mib(r.FSMBytes) })
		row("archive/ growth (apparent)", func(r *Result) string { return mib(r.ArchiveBytes) })
		row("archive bytes per step (scenario)", func(r *Result) string { return fmt.Sprintf("%.0f B", r.ArchiveBytesPerStep) })
		row("archive bytes per entry (all archived)", func(r *Result) string { return fmt.Sprintf("%.0f B", r.ArchiveBytesPerEntry) })
		row("Cairn log WARN/ERROR lines", func(r *Result) string { return fmt.Sprint(r.CairnWarnings) })
		tw.Flush()
	}
	if len(rep.Comparison) > 0 {
		printComparison(w, rep.Comparison)
	}
	if len(rep.ArchiveComparison) > 0 {
		printArchiveComparison(w, rep.ArchiveComparison)
	}
	if len(rep.CkptComparison) > 0 {
		printCkptComparison(w, rep.CkptComparison)
	}
	if len(rep.SDKComparison) > 0 {
		printSDKComparison(w, rep.SDKComparison)
	}
	for _, r := range rep.Results {
		if r.Error == "" && len(r.Notes) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", r.label())
		if r.Error != "" {
			fmt.Fprintf(w, "  ERROR: %s\n", r.Error)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  - %s\n", strings.ReplaceAll(n, "\n", "\n    "))
		}
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "\nERROR: %s\n", e)
	}
	if len(sleeps) > 0 {
		fmt.Fprintln(w, "\nsleep: lateness = arrival of the call after the sleep at the app − the run's until; a call before until is a bug.")
	}
	if len(flows) > 0 {
		fmt.Fprintln(w, "\nflow: passes run back to back in one cairn process; progress is followed from the app (no polling of Cairn during a pass);")
		fmt.Fprintln(w, "in flight = a call's stay in the app, arrival → just before its answer; two of one key at once (overlap) is a bug under limit 1.")
	}
	for _, r := range rs {
		if f := r.Fair; f != nil {
			fmt.Fprintf(w, "\nfair: %d calls of %s hung (at most %d at once, of %d events); %s: event→completion p50 %s ms, p99 %s ms; %d of %d runs completed before any hanging call was answered\n",
				f.HeldAtStart, hangFnID, f.MostHeld, f.HangEvents, goFnID, num(r.LatencyMs.P50), num(r.LatencyMs.P99), f.DoneWhileHeld, r.Completed)
		}
	}
	if len(rs) > 0 {
		fmt.Fprintln(w, "\nlatency = run ended_at − created_at (Cairn's ms stamps); hop = app answered a 206 → next call for that run arrived;")
		fmt.Fprintln(w, "Cairn CPU, RSS and log growth are of the cairn process / data dir over first send → last completion.")
		fmt.Fprintln(w, "apps: go = the Go SDK app (sdk/), raw = a hand-written protocol handler, both inside the bench process; ts = e2e/tsapp (node).")
		fmt.Fprintln(w, "app / load generator CPU: the bench process's CPU (getrusage, first send → figures read) shared out by CPU-profile")
		fmt.Fprintln(w, "samples labelled by goroutine (GC workers spread pro rata); ts: the node child's utime+stime. projected steps/s =")
		fmt.Fprintln(w, "1 / CPU per step (per core), or cores / the sum of all parts' CPU per step. See bench/README.md.")
	}
}

// printSleepTable writes the sleep scenario's table: one column per result.
func printSleepTable(w io.Writer, rs []*Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(label string, cell func(r *Result, s *SleepResult) string) {
		fmt.Fprint(tw, label+"\t")
		for _, r := range rs {
			fmt.Fprint(tw, cell(r, r.Sleep)+"\t")
		}
		fmt.Fprintln(tw)
	}
	// wake rows are empty with -sleep-measure-only.
	wake := func(label string, cell func(r *Result, s *SleepResult) string) {
		row(label, func(r *Result, s *SleepResult) string {
			if s.MeasureOnly {
				return "(measure only)"
			}
			return cell(r, s)
		})
	}
	sleeping := func(label string, cell func(r *Result, s *SleepResult) string) {
		row(label, func(r *Result, s *SleepResult) string {
			if !s.AllSleeping {
				return "(not all slept)"
			}
			return cell(r, s)
		})
	}
	row("", func(r *Result, _ *SleepResult) string { return r.label() })
	row("load offered", func(r *Result, _ *SleepResult) string { return r.Offered })
	row("until (first send + lead)", func(_ *Result, s *SleepResult) string { return s.Until })
	row("events accepted (failed POSTs)", func(r *Result, _ *SleepResult) string {
		return fmt.Sprintf("%d (%d)", r.Events, r.SendErrors)
	})
	row("events accepted/s (first send → last accepted)", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%s (%.1f s)", num(s.EventsPerSec), s.SendSec)
	})
	row("POST /e round trip p50 / p99", func(r *Result, s *SleepResult) string {
		return pctCell(r.AcceptMs, fmt.Sprintf(" ms (%d events)", s.Batch))
	})
	row("sleeps registered before until / late / never", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%d / %d / %d", s.Registered, s.LateRegistered, s.NotRegistered)
	})
	row("registered/s (first send → last Sleep op answered)", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%s (%.1f s)", num(s.RegisterPerSec), s.RegisterSec)
	})
	row("smallest margin before until (app / Cairn)", func(_ *Result, s *SleepResult) string {
		c := "-"
		if s.Checked > 0 {
			c = fmt.Sprintf("%.1f s", s.CairnMinMarginMs/1000)
		}
		return fmt.Sprintf("%.1f s / %s", s.MinMarginSec, c)
	})
	row("Cairn CPU while registering (per run)", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%.1f s (%.2f ms)", s.RegisterCPUSec, s.RegisterCPUPerR)
	})
	row("Cairn RSS before the scenario", func(_ *Result, s *SleepResult) string { return fmt.Sprintf("%.1f MiB", s.BaseRSSMiB) })
	sleeping("Cairn RSS, all sleeping (VmRSS)", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%.1f MiB", s.SleepingRSSMiB)
	})
	sleeping("… after the idle window", func(_ *Result, s *SleepResult) string {
		if s.IdleWindowSec == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f MiB", s.AfterIdleRSSMiB)
	})
	sleeping("Cairn peak RSS so far (VmHWM)", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%.1f MiB", s.SleepingHWMMiB)
	})
	sleeping("RSS growth per sleeping run", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%.2f KiB", s.RSSPerRunKiB)
	})
	sleeping("Go heap in use / goroutines", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%.1f MiB / %d", s.HeapInuseMiB, s.Goroutines)
	})
	sleeping("Cairn CPU while all sleep", func(_ *Result, s *SleepResult) string {
		if s.IdleWindowSec == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%% of a core (%.0f s)", s.IdleCPUPct, s.IdleWindowSec)
	})
	sleeping("raft/ growth (apparent / du)", func(_ *Result, s *SleepResult) string {
		return mib(s.RaftBytes) + " / " + mib(s.RaftAllocBytes)
	})
	sleeping("fsm/ growth (apparent / du)", func(_ *Result, s *SleepResult) string {
		return mib(s.FSMBytes) + " / " + mib(s.FSMAllocBytes)
	})
	sleeping("data bytes per run (raft+fsm apparent)", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%.0f B", s.BytesPerRun)
	})
	sleeping("raft entries (Δ last_log_index)", func(_ *Result, s *SleepResult) string { return fmt.Sprint(s.LogEntries) })
	wake("runs woke / answered 200", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%d / %d", s.Woke, s.Done)
	})
	wake("lateness p50 / p99 (app)", func(_ *Result, s *SleepResult) string { return pctCell(s.LatenessMs, " ms") })
	wake("lateness min / max (app)", func(_ *Result, s *SleepResult) string {
		if s.LatenessMs.N == 0 {
			return "-"
		}
		return num(s.LatenessMs.Min) + " / " + num(s.LatenessMs.Max) + " ms"
	})
	wake("Cairn step.woke − until p50 / p99", func(_ *Result, s *SleepResult) string { return pctCell(s.CairnLatenessMs, " ms") })
	wake("Cairn step.woke − until min / max", func(_ *Result, s *SleepResult) string {
		if s.CairnLatenessMs.N == 0 {
			return "-"
		}
		return num(s.CairnLatenessMs.Min) + " / " + num(s.CairnLatenessMs.Max) + " ms"
	})
	wake("early wakes (app / Cairn)", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%d / %d", s.EarlyApp, s.EarlyCairn)
	})
	wake("all woke / all answered, after the last until", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%.2f s / %.2f s", s.AllWokeSec, s.AllDoneSec)
	})
	wake("wake-up runs/s (until → last answered)", func(_ *Result, s *SleepResult) string { return num(s.WakeRunsPerSec) })
	wake("new runs during the wake-up: event → end p50 / p99", func(_ *Result, s *SleepResult) string {
		if s.ProbeMs.N == 0 {
			return "-"
		}
		return pctCell(s.ProbeMs, fmt.Sprintf(" ms (%d runs, %d not completed)", s.ProbeMs.N, s.ProbeUnfinish))
	})
	wake("Cairn CPU during wake-up", func(_ *Result, s *SleepResult) string { return fmt.Sprintf("%.1f s", s.WakeCPUSec) })
	wake("Cairn peak RSS during wake-up (VmHWM)", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%.1f MiB", s.WakePeakRSSMiB)
	})
	row("Cairn RSS at end", func(_ *Result, s *SleepResult) string { return fmt.Sprintf("%.1f MiB", s.EndRSSMiB) })
	row("re-sent calls (first / after sleep)", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%d / %d", s.ExtraFirstCalls, s.ExtraWokeCalls)
	})
	row("histories read: sleeping / completed", func(_ *Result, s *SleepResult) string {
		return fmt.Sprintf("%d: %d / %d", s.Checked, s.CheckedSleeping, s.CheckedCompleted)
	})
	row("Cairn log WARN/ERROR lines", func(r *Result, _ *SleepResult) string { return fmt.Sprint(r.CairnWarnings) })
	tw.Flush()
}

// printFlowTable writes the flow scenario's table: one column per pass.
func printFlowTable(w io.Writer, rs []*Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(label string, cell func(r *Result, f *FlowResult) string) {
		fmt.Fprint(tw, label+"\t")
		for _, r := range rs {
			fmt.Fprint(tw, cell(r, r.Flow)+"\t")
		}
		fmt.Fprintln(tw)
	}
	row("", func(r *Result, _ *FlowResult) string { return r.label() })
	row("function", func(_ *Result, f *FlowResult) string { return f.Function })
	row("concurrency", func(_ *Result, f *FlowResult) string {
		if f.Concurrency == "none" {
			return "none"
		}
		return "limit 1 per " + flowConcKey // f.Concurrency is the JSON sent
	})
	row("distinct keys (event.data.k)", func(_ *Result, f *FlowResult) string { return fmt.Sprint(f.Keys) })
	row("load offered", func(r *Result, _ *FlowResult) string { return r.Offered })
	row("events accepted (failed POSTs)", func(r *Result, _ *FlowResult) string { return fmt.Sprintf("%d (%d)", r.Events, r.SendErrors) })
	row("runs completed / failed / unfinished", func(r *Result, _ *FlowResult) string {
		return fmt.Sprintf("%d / %d / %d", r.Completed, r.Failed, r.Unfinished)
	})
	row("wall: first send → last completion", func(r *Result, _ *FlowResult) string { return fmt.Sprintf("%.2f s", r.WallSec) })
	row("runs/s", func(r *Result, _ *FlowResult) string { return num(r.RunsPerSec) })
	row("steps/s (3 per run)", func(r *Result, _ *FlowResult) string { return num(r.StepsPerSec) })
	row("event→completion p50 / p99", func(r *Result, _ *FlowResult) string { return pctCell(r.LatencyMs, " ms") })
	row("event→completion max", func(r *Result, _ *FlowResult) string { return fmt.Sprintf("%s ms", num(r.LatencyMs.Max)) })
	row("POST /e round trip p50 / p99", func(r *Result, f *FlowResult) string {
		return pctCell(r.AcceptMs, fmt.Sprintf(" ms (%d events)", f.Batch))
	})
	row("step hop overhead p50 / p99 (app side)", func(r *Result, _ *FlowResult) string { return pctCell(r.HopMs, " ms") })
	row("app calls per run (Cairn / app)", func(r *Result, f *FlowResult) string {
		return num(r.CallsPerRun) + " / " + num(f.AppCallsPerRun)
	})
	row("max calls in flight, all keys (app)", func(_ *Result, f *FlowResult) string { return fmt.Sprint(f.MaxInFlight) })
	row("max calls in flight per key (app)", func(_ *Result, f *FlowResult) string { return fmt.Sprint(f.MaxPerKey) })
	row("… live count in the handler (per key / all)", func(_ *Result, f *FlowResult) string {
		return fmt.Sprintf("%d / %d", f.LiveMaxPerKey, f.LiveMaxAll)
	})
	row("claims that found the key full, per call", func(_ *Result, f *FlowResult) string {
		if f.HistSample == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f (%d runs)", f.WaitsPerCall, f.HistSample)
	})
	row("same-key overlaps (bug if > 0 with a limit)", func(_ *Result, f *FlowResult) string { return fmt.Sprint(f.Overlaps) })
	row("Cairn CPU", func(r *Result, _ *FlowResult) string { return fmt.Sprintf("%.2f s", r.CPUSec) })
	row("Cairn CPU per step", func(r *Result, _ *FlowResult) string { return fmt.Sprintf("%.3f ms", r.CPUSecPerStep*1000) })
	row("app CPU per step (share of the bench process)", func(r *Result, _ *FlowResult) string {
		return fmt.Sprintf("%.3f ms", r.AppCPUMsPerStep)
	})
	row("load generator CPU per step", func(r *Result, _ *FlowResult) string { return fmt.Sprintf("%.3f ms", r.LoadGenCPUMsPerStep) })
	row("CPU per step vs none (mean of none passes)", func(_ *Result, f *FlowResult) string {
		if f.CPUPerStepVsNone == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f×", f.CPUPerStepVsNone)
	})
	row("Cairn idle CPU (before scenarios)", func(r *Result, _ *FlowResult) string { return fmt.Sprintf("%.1f%% of a core", r.IdleCPUPct) })
	row("Cairn CPU in the 2 s after", func(r *Result, _ *FlowResult) string { return fmt.Sprintf("%.1f%% of a core", r.AfterCPUPct) })
	row("Cairn peak RSS (VmHWM)", func(r *Result, _ *FlowResult) string { return fmt.Sprintf("%.1f MiB", r.PeakRSSMiB) })
	row("Cairn RSS at end", func(r *Result, _ *FlowResult) string { return fmt.Sprintf("%.1f MiB", r.EndRSSMiB) })
	row("raft/ growth (apparent)", func(r *Result, _ *FlowResult) string { return mib(r.RaftBytes) })
	row("log bytes per step", func(r *Result, _ *FlowResult) string { return fmt.Sprintf("%.0f B", r.RaftBytesPerStep) })
	row("raft entries per step", func(r *Result, _ *FlowResult) string { return num(r.EntriesPerStep) })
	row("fsm/ growth (apparent)", func(r *Result, _ *FlowResult) string { return mib(r.FSMBytes) })
	row("Cairn log WARN/ERROR lines", func(r *Result, _ *FlowResult) string { return fmt.Sprint(r.CairnWarnings) })
	tw.Flush()
	// Means per kind of pass, and the ratios that answer "what does the
	// limit cost": with an ABBA order the drift between passes cancels.
	cpu := func(r *Result) float64 { return r.CPUSecPerStep }
	rps := func(r *Result) float64 { return r.RunsPerSec }
	noneCPU, noneRPS := flowMean(rs, "none", cpu), flowMean(rs, "none", rps)
	fmt.Fprintln(w)
	for _, k := range []string{"none", "conc", "conc-few"} {
		n := 0
		for _, r := range rs {
			if r.Flow.Pass == k && r.Error == "" && r.Completed > 0 {
				n++
			}
		}
		if n == 0 {
			continue
		}
		c, t := flowMean(rs, k, cpu), flowMean(rs, k, rps)
		line := fmt.Sprintf("flow %-8s mean of %d pass(es): CPU per step %.3f ms, %s runs/s", k, n, c*1000, num(t))
		if k != "none" && noneCPU > 0 && noneRPS > 0 {
			line += fmt.Sprintf("  →  vs none: CPU per step %.2f×, runs/s %.2f×", c/noneCPU, t/noneRPS)
		}
		fmt.Fprintln(w, line)
	}
}

func writeJSON(path string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
