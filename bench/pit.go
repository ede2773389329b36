package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/cairn-dev/cairn/internal/proc"
)

// The pit scenario measures point-in-time state: how fast a node rebuilds
// the whole state at a past log index (GET /v1/state?at_index=N: restore
// the nearest snapshot, apply the log after it in big batches). It adds
// nothing to the log: it reads the one the scenarios before it wrote, so
// run it after a burst (-scenarios burst,pit -n 20000).

// pitRebuilds is how many indexes are rebuilt: the last one, then the ones
// just below it, in descending order, so that none can carry a kept state
// forward and each is built from a snapshot or the empty state.
const pitRebuilds = 3

// PitResult is the pit scenario's own figures.
type PitResult struct {
	LastIndex   uint64     `json:"last_index"`
	DigestMatch bool       `json:"digest_matches_live"`
	Builds      []pitBuild `json:"builds"`
	// RecordsPerSec is the best rebuild's records / (restore + apply).
	RecordsPerSec float64 `json:"records_per_sec"`
	// ApplyRecordsPerSec leaves the snapshot restore out.
	ApplyRecordsPerSec float64 `json:"apply_records_per_sec"`
	CachedMs           float64 `json:"cached_read_ms"` // the last index again: kept
}

type pitBuild struct {
	Index     uint64  `json:"index"`
	From      string  `json:"from"`
	FromIndex uint64  `json:"from_index"`
	Entries   int     `json:"entries"`
	Records   int     `json:"records"`
	RestoreMs float64 `json:"restore_ms"`
	ApplyMs   float64 `json:"apply_ms"`
	WallMs    float64 `json:"wall_ms"` // the request as the bench saw it
}

type stateAnswer struct {
	Data struct {
		Index  uint64 `json:"index"`
		Digest string `json:"digest"`
		Build  *struct {
			From      string `json:"from"`
			FromIndex uint64 `json:"from_index"`
			Entries   int    `json:"entries"`
			Records   int    `json:"records"`
			RestoreNs int64  `json:"restore_ns"`
			ApplyNs   int64  `json:"apply_ns"`
		} `json:"build"`
	} `json:"data"`
}

func runPit(ctx context.Context, e *env) *Result {
	res := &Result{App: e.app, Scenario: "pit", Offered: fmt.Sprintf("rebuild the state at the last %d indexes", pitRebuilds)}
	pr := &PitResult{}
	res.Pit = pr
	var live stateAnswer
	if err := e.cairn.getJSON(ctx, "/v1/state", &live); err != nil {
		res.Error = err.Error()
		return res
	}
	pr.LastIndex = live.Data.Index
	a := e.sampler.sample()
	for i := range uint64(pitRebuilds) {
		if i >= pr.LastIndex {
			break
		}
		index := pr.LastIndex - i
		var st stateAnswer
		t0 := time.Now()
		if err := e.cairn.getJSON(ctx, fmt.Sprintf("/v1/state?at_index=%d", index), &st); err != nil {
			res.Error = err.Error()
			return res
		}
		wall := time.Since(t0)
		if i == 0 {
			pr.DigestMatch = st.Data.Digest == live.Data.Digest
			if !pr.DigestMatch {
				res.Error = fmt.Sprintf("the state rebuilt at the last index %d has digest %s, the live one %s",
					index, st.Data.Digest, live.Data.Digest)
			}
		}
		b := st.Data.Build
		if b == nil {
			res.Error = "GET /v1/state?at_index= answered without build figures"
			return res
		}
		pb := pitBuild{Index: index, From: b.From, FromIndex: b.FromIndex, Entries: b.Entries, Records: b.Records,
			RestoreMs: float64(b.RestoreNs) / 1e6, ApplyMs: float64(b.ApplyNs) / 1e6, WallMs: float64(wall.Microseconds()) / 1000}
		pr.Builds = append(pr.Builds, pb)
		if pb.RestoreMs+pb.ApplyMs > 0 {
			pr.RecordsPerSec = max(pr.RecordsPerSec, float64(pb.Records)/((pb.RestoreMs+pb.ApplyMs)/1000))
		}
		if pb.ApplyMs > 0 {
			pr.ApplyRecordsPerSec = max(pr.ApplyRecordsPerSec, float64(pb.Records)/(pb.ApplyMs/1000))
		}
	}
	if b := e.sampler.sample(); b.ticks >= a.ticks {
		res.CPUSec = float64(b.ticks-a.ticks) / proc.ClockTicks()
	}
	t0 := time.Now()
	var again stateAnswer
	if err := e.cairn.getJSON(ctx, fmt.Sprintf("/v1/state?at_index=%d", pr.LastIndex), &again); err != nil {
		res.Error = err.Error()
		return res
	}
	pr.CachedMs = float64(time.Since(t0).Microseconds()) / 1000
	return res
}

func printPitTable(w io.Writer, rs []*Result) {
	for _, r := range rs {
		p := r.Pit
		fmt.Fprintf(w, "%s: the state at a past index, rebuilt (last index %d; its digest matches the live one: %v)\n",
			r.label(), p.LastIndex, p.DigestMatch)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "index\tfrom\tfrom index\tentries\trecords\trestore\tapply\trequest\trecords/s\t")
		for _, b := range p.Builds {
			rate := "-"
			if b.RestoreMs+b.ApplyMs > 0 {
				rate = fmt.Sprintf("%.0f", float64(b.Records)/((b.RestoreMs+b.ApplyMs)/1000))
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%.1f ms\t%.1f ms\t%.1f ms\t%s\t\n", b.Index, b.From, b.FromIndex, b.Entries,
				b.Records, b.RestoreMs, b.ApplyMs, b.WallMs, rate)
		}
		tw.Flush()
		fmt.Fprintf(w, "best: %.0f records/s (%.0f applying alone); Cairn CPU over the rebuilds %.2f s; a kept state read again in %.1f ms\n",
			p.RecordsPerSec, p.ApplyRecordsPerSec, r.CPUSec, p.CachedMs)
	}
}
