// Command scaleout is a model of Cairn partitioned over many Raft groups
// (ARCHITECTURE.md, "Scaling out (design)"): for 1, 2, 4, ... 32 groups it
// prints runs/s and steps/s, the share of cross-partition work and what binds.
// It runs no Cairn: it is arithmetic over per-step costs measured by the
// bench (bench/README.md) and a workload mix, both flags. Its figures are a
// model's, not measurements.
//
//	go run ./bench/scaleout                      # the table
//	go run ./bench/scaleout -batch 1             # shared keys without allowances
//	go run ./bench/scaleout -measure-fsync 300   # measure fsync here first
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

func main() {
	p, mix := DefaultParams(), DefaultMix()
	groups := flag.String("groups", "1,2,4,8,16,32", "group counts of the main table (each grown from the one before)")
	flag.Float64Var(&p.CPUPerStepMs, "cpu-step", p.CPUPerStepMs, "Cairn leader CPU per step, ms (measured)")
	flag.Float64Var(&p.FsyncMs, "fsync-ms", p.FsyncMs, "fsync latency, ms (measured here, p50)")
	flag.Float64Var(&p.CoresPerNode, "cores", p.CoresPerNode, "cores per node")
	flag.Float64Var(&p.Util, "util", p.Util, "usable share of a node's CPU")
	flag.IntVar(&p.GroupsPerNode, "per-node", p.GroupsPerNode, "group leaders per node (nodes = max(3, groups/per-node))")
	flag.Float64Var(&p.AllowanceBatch, "batch", p.AllowanceBatch, "slots/tokens of a shared key per allowance message (1: every step asks the owner)")
	flag.Float64Var(&mix.SecondKey, "second-key", mix.SecondKey, "share of runs with a further key owned elsewhere")
	flag.Float64Var(&mix.SharedKey, "shared-key", mix.SharedKey, "share of runs under one cluster-wide key")
	flag.Float64Var(&mix.Invoke, "invoke", mix.Invoke, "share of runs that invoke a function")
	flag.Float64Var(&mix.Signal, "signal", mix.Signal, "share of runs that wait for a signal")
	flag.Float64Var(&mix.Wait, "wait", mix.Wait, "share of runs with an indexed waitForEvent")
	flag.Float64Var(&mix.Fanout, "fanout", mix.Fanout, "share of runs whose event also starts a run elsewhere")
	flag.Float64Var(&mix.Broadcast, "broadcast", mix.Broadcast, "share of runs whose event visits every group")
	flag.Float64Var(&mix.Hot, "hot", mix.Hot, "share of all runs under one placement key")
	measure := flag.Int("measure-fsync", 0, "measure N fsyncs of 4 KiB appends in the current directory and use their p50")
	flag.Parse()

	if *measure > 0 {
		p50, p90, p99, err := measureFsync(".", *measure)
		if err != nil {
			fmt.Fprintln(os.Stderr, "scaleout:", err)
			os.Exit(1)
		}
		fmt.Printf("fsync of a 4 KiB append here: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms (%d samples)\n\n", p50, p90, p99, *measure)
		p.FsyncMs = p50
	}
	gs, err := parseGroups(*groups)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scaleout:", err)
		os.Exit(2)
	}

	fmt.Printf("measured: %.3f ms Cairn CPU/step, %.2f records/step, %.1f entries/step, %.0f µs apply/record, %.0f B log/step, fsync %.2f ms\n",
		p.CPUPerStepMs, p.RecordsPerStep, p.EntriesPerStep, p.ApplyPerRecordMs*1000, p.LogBytesPerStep, p.FsyncMs)
	fmt.Printf("assumed:  %g cores/node at %.0f%%, %d replicas, nodes = max(%d, groups), RTT %.1f ms, a cross-partition message = %.1f+%.1f records, allowances of %g, %d slots\n",
		p.CoresPerNode, p.Util*100, p.Replicas, p.Replicas, p.RTTMs, p.XSendRecords, p.XRecvRecords, p.AllowanceBatch, p.Slots)
	fmt.Printf("mix (assumed): keyed %.0f%%, second key %.0f%%, shared key %.0f%%, invoke %.0f%% (remote %.0f%%), signal %.0f%%, wait %.0f%%, fan-out %.0f%%, broadcast %.0f%%, hot key %.0f%%\n\n",
		mix.Keyed*100, mix.SecondKey*100, mix.SharedKey*100, mix.Invoke*100, mix.InvokeRemote*100, mix.Signal*100, mix.Wait*100, mix.Fanout*100, mix.Broadcast*100, mix.Hot*100)

	rows, moved := Curve(p, mix, gs)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "groups\tnodes\truns/s\tsteps/s\t× 1 group\tcross runs\tmsgs/100 steps\tslots moved\tbinds\tglobal coord.\tdisk MB/s/node\tNIC\tentries/fsync\t")
	for i, r := range rows {
		mv := "-"
		if i > 0 {
			mv = fmt.Sprintf("%.0f%%", 100*moved[i])
		}
		fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.0f\t%.2f\t%.0f%%\t%.1f\t%s\t%s\t%s\t%.1f\t%.1f%%\t%.1f\t\n",
			r.Groups, r.Nodes, r.RunsPerSec, r.StepsPerSec, r.RunsPerSec/rows[0].RunsPerSec,
			100*r.CrossRuns, r.CrossPer100, mv, r.Bound, globalCol(r), r.DiskMBps, r.NICPct, r.PerFsync)
	}
	tw.Flush()
	last := rows[len(rows)-1]
	fmt.Printf("\ncross runs: runs with at least one cross-partition message; msgs: such messages per 100 steps." +
		"\nglobal coord.: share of the binding node's CPU on shared-key allowances, broadcasts and the meta group;" +
		" ceiling: runs/s at which that alone would fill a node.\nentries/fsync: log entries each fsync must carry on the" +
		" busiest node (one log store per node, syncs coalesced).\n")
	fmt.Printf("a cross-partition message adds ≈ %.1f ms to what waits for it (RTT + two commits of RTT + fsync);"+
		" at %d groups %.0f%% of appended records are such messages; the meta group uses %.2f%% of a node\n",
		last.XOpMs, last.Groups, 100*last.CrossRecords, 100*last.MetaUtil)

	// Where the curve flattens: keep growing the last map.
	fmt.Println("\nbeyond (same mix; where global coordination takes over):")
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "groups\truns/s\tsteps/s\tper group\tbinds\tglobal coord.\t")
	more := append([]int(nil), gs...)
	for _, g := range []int{64, 128, 256, 512, 1024} {
		if g > more[len(more)-1] {
			more = append(more, g)
		}
	}
	ext, _ := Curve(p, mix, more)
	for _, r := range ext[len(gs):] {
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.0f\t%s\t%s\t\n", r.Groups, r.RunsPerSec, r.StepsPerSec, r.RunsPerSec/float64(r.Groups), r.Bound, globalCol(r))
	}
	tw.Flush()

	fmt.Println("\nsensitivity (runs/s at 1 / 8 / 32 groups):")
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "variant\t1\t8\t32\t32 binds\t")
	for _, v := range variants(p, mix) {
		rs, _ := Curve(v.p, v.mix, []int{1, 8, 32})
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%s\t\n", v.name, rs[0].RunsPerSec, rs[1].RunsPerSec, rs[2].RunsPerSec, rs[2].Bound)
	}
	tw.Flush()
}

// globalCol: the share of the binding node's CPU spent on global
// coordination (shared-key allowances, broadcasts, the meta group), and the
// runs/s at which that work alone would fill a node.
func globalCol(r Row) string {
	return fmt.Sprintf("%.0f%% (ceiling %s)", 100*r.GlobalShare, human(r.GlobalCeiling))
}

func human(v float64) string {
	switch {
	case v > 1e12:
		return "∞"
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// Curve evaluates maps of the given group counts, each grown from the one
// before (the first from NewMap), and returns the rows and the share of
// slots each growth moved.
func Curve(p Params, mix Mix, groups []int) ([]Row, []float64) {
	var rows []Row
	var moved []float64
	var m *PartitionMap
	for _, g := range groups {
		mv := 0
		if m == nil {
			m = NewMap(p.Slots, g)
		} else {
			m, mv = m.Grow(g)
		}
		rows = append(rows, Evaluate(p, mix, m))
		moved = append(moved, float64(mv)/float64(p.Slots))
	}
	return rows, moved
}

type variant struct {
	name string
	p    Params
	mix  Mix
}

func variants(p Params, mix Mix) []variant {
	v := []variant{{name: "default", p: p, mix: mix}}
	add := func(name string, f func(*Params, *Mix)) {
		q, m := p, mix
		f(&q, &m)
		v = append(v, variant{name, q, m})
	}
	add("no flow keys, invokes, signals, waits, fan-out, broadcast", func(_ *Params, m *Mix) { *m = Mix{} })
	add("shared key without allowances (-batch 1)", func(q *Params, _ *Mix) { q.AllowanceBatch = 1 })
	add("shared key on 30% of runs, -batch 1", func(q *Params, m *Mix) { q.AllowanceBatch = 1; m.SharedKey = 0.3 })
	add("broadcast 10% of events", func(_ *Params, m *Mix) { m.Broadcast = 0.1 })
	add("one tenant's key has 5% of runs", func(_ *Params, m *Mix) { m.Hot = 0.05 })
	add("8 cores per node", func(q *Params, _ *Mix) { q.CoresPerNode = 8 })
	add("8 cores per node, 4 groups per node", func(q *Params, _ *Mix) { q.CoresPerNode = 8; q.GroupsPerNode = 4 })
	return v
}

func parseGroups(s string) ([]int, error) {
	var gs []int
	for _, f := range strings.Split(s, ",") {
		g, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || g < 1 || (len(gs) > 0 && g < gs[len(gs)-1]) {
			return nil, fmt.Errorf("-groups: want increasing counts ≥ 1, got %q", s)
		}
		gs = append(gs, g)
	}
	return gs, nil
}
