package main

// The archive (-archive): Cairn keeps the log entries Raft compacts away
// (package archive). -archive=both runs each app mode with the archive off,
// then on, and compares the hot path: CPU per step and steps/s. With
// -snapshot-threshold the log is compacted during the scenarios, so the
// archive is written while they run.

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

const (
	archiveOn  = "on"
	archiveOff = "off"
)

// archiveModes is the value of -archive: on (Cairn's default), off, or
// both (off, then on).
type archiveModes []string

func (m *archiveModes) String() string {
	if m == nil || len(*m) == 0 {
		return archiveOn
	}
	if len(*m) > 1 {
		return "both"
	}
	return (*m)[0]
}

func (m *archiveModes) Set(s string) error {
	switch strings.ToLower(s) {
	case archiveOn:
		*m = []string{archiveOn}
	case archiveOff:
		*m = []string{archiveOff}
	case "both":
		*m = []string{archiveOff, archiveOn}
	default:
		return fmt.Errorf("want on, off or both, not %q", s)
	}
	return nil
}

// archiveDir is the archive's directory in a node's data dir (Cairn's
// default for --archive-dir).
const archiveDir = "archive"

// archiveStatus is what /v1/status says of the archive (null when off).
type archiveStatus struct {
	Segments int    `json:"segments"`
	Bytes    int64  `json:"bytes"`
	First    uint64 `json:"first_index"`
	Last     uint64 `json:"last_index"`
}

// archiveStatus reads the node's archive figures (nil when it is off).
func (n *cairnNode) archiveStatus(ctx context.Context) (*archiveStatus, error) {
	var st struct {
		Archive *archiveStatus `json:"archive"`
	}
	if err := n.getJSON(ctx, "/v1/status", &st); err != nil {
		return nil, err
	}
	return st.Archive, nil
}

// snapshotCheckInterval is how often a bench node checks its snapshot
// threshold (raft's default, 2 min, would never compact during a burst).
const snapshotCheckInterval = "1s"

// cairnArgs are the flags of a Cairn process for an archive mode.
func cairnArgs(o *options, archive string) []string {
	var args []string
	if archive == archiveOff {
		args = append(args, "--archive=false")
	}
	if o.snapshotThreshold > 0 {
		n := strconv.FormatUint(o.snapshotThreshold, 10)
		args = append(args, "--snapshot-threshold", n, "--trailing-logs", n, "--snapshot-interval", snapshotCheckInterval)
	}
	return args
}

// ArchiveComparison is one app/scenario measured with the archive off and
// on in one invocation.
type ArchiveComparison struct {
	App                 string  `json:"app"`
	Mode                string  `json:"mode"`
	Scenario            string  `json:"scenario"`
	OffCPUMsPerStep     float64 `json:"off_cairn_cpu_ms_per_step"`
	OnCPUMsPerStep      float64 `json:"on_cairn_cpu_ms_per_step"`
	CPURatio            float64 `json:"cpu_per_step_ratio"`
	OffStepsPerSec      float64 `json:"off_steps_per_sec"`
	OnStepsPerSec       float64 `json:"on_steps_per_sec"`
	StepsPerSecRatio    float64 `json:"steps_per_sec_ratio"`
	ArchiveBytesPerStep float64 `json:"archive_bytes_per_step"`
	// SteadyBytesPerStep is archive bytes per entry × entries per step:
	// what each step adds to the archive once all of it is compacted.
	SteadyBytesPerStep float64 `json:"archive_bytes_per_step_all_compacted"`
}

// compareArchive pairs the archive-off and archive-on results of the same
// app, security mode and scenario.
func compareArchive(rs []*Result) []ArchiveComparison {
	var out []ArchiveComparison
	for _, off := range rs {
		if off.Archive != archiveOff || off.Sleep != nil || off.Flow != nil || off.Steps == 0 {
			continue
		}
		for _, on := range rs {
			if on.Archive != archiveOn || on.App != off.App || on.Mode != off.Mode || on.Checkpointing != off.Checkpointing || on.Scenario != off.Scenario || on.Steps == 0 {
				continue
			}
			c := ArchiveComparison{App: off.App, Mode: off.Mode, Scenario: off.Scenario,
				OffCPUMsPerStep: off.CPUSecPerStep * 1000, OnCPUMsPerStep: on.CPUSecPerStep * 1000,
				OffStepsPerSec: off.StepsPerSec, OnStepsPerSec: on.StepsPerSec, ArchiveBytesPerStep: on.ArchiveBytesPerStep,
				SteadyBytesPerStep: on.ArchiveBytesPerEntry * on.EntriesPerStep}
			if c.OffCPUMsPerStep > 0 {
				c.CPURatio = c.OnCPUMsPerStep / c.OffCPUMsPerStep
			}
			if c.OffStepsPerSec > 0 {
				c.StepsPerSecRatio = c.OnStepsPerSec / c.OffStepsPerSec
			}
			out = append(out, c)
		}
	}
	return out
}

func printArchiveComparison(w io.Writer, cs []ArchiveComparison) {
	fmt.Fprintln(w, "\nArchive off vs on (same invocation; ratio = on / off)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tCairn CPU per step off\ton\tratio\tsteps/s off\ton\tratio\tarchive bytes per step (scenario)\t(all compacted)\t")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s %s / %s\t%.3f ms\t%.3f ms\t%.2f\t%s\t%s\t%.2f\t%.0f B\t%.0f B\t\n", c.App, c.Mode, c.Scenario,
			c.OffCPUMsPerStep, c.OnCPUMsPerStep, c.CPURatio, num(c.OffStepsPerSec), num(c.OnStepsPerSec),
			c.StepsPerSecRatio, c.ArchiveBytesPerStep, c.SteadyBytesPerStep)
	}
	tw.Flush()
}
