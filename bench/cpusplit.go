package main

// Whose CPU the bench process spends. The Go apps (-app go, the SDK app;
// -app raw, the hand-written handler) run inside the bench process, beside
// the load generator (event senders, status polls, /proc samplers) and, for
// the TS app, the proxies. getrusage gives the process's CPU; a CPU profile
// taken over the same window, whose samples carry a goroutine label naming
// the part (pprof labels are inherited by the goroutines a goroutine
// starts, so every connection goroutine of an app's HTTP server, and of the
// HTTP client the app dials Cairn with, carries the app's label), gives
// each part's share of it.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"
)

const (
	partLabel = "cairn-bench-part"
	partApp   = "app"   // a Go app's HTTP server and its own requests to Cairn
	partBench = "bench" // load generator and measurements (the main goroutine and all it starts)
	partProxy = "proxy" // the TS app's timing and checkpoint-counting proxies
)

// labelGoroutine names the part the calling goroutine (and every goroutine
// it starts from now on) works for.
func labelGoroutine(part string) {
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(partLabel, part)))
}

// selfCPU is the bench process's user + system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuSplit measures the bench process's CPU over a window and splits it by
// part. One window at a time (a process has one CPU profile).
type cpuSplit struct {
	mu    sync.Mutex
	buf   *bytes.Buffer
	on    bool
	err   error
	start time.Duration
}

// begin starts a window, dropping one left open.
func (s *cpuSplit) begin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.on {
		pprof.StopCPUProfile()
		s.on = false
	}
	s.buf = new(bytes.Buffer)
	s.err = pprof.StartCPUProfile(s.buf)
	s.on = s.err == nil
	s.start = selfCPU()
}

// abort ends a window without reading it.
func (s *cpuSplit) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.on {
		pprof.StopCPUProfile()
		s.on = false
	}
}

// cpuShares is a window's CPU, split.
type cpuShares struct {
	Total   time.Duration    // the process's CPU over the window (getrusage)
	NS      map[string]int64 // profiled CPU ns by part ("" for unlabelled: GC workers, the runtime)
	Samples int              // profile samples (one per 10 ms of CPU)
}

// end closes the window. Without a profile only Total is set and err says why.
func (s *cpuSplit) end() (cpuShares, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := cpuShares{Total: selfCPU() - s.start}
	if !s.on {
		if s.err != nil {
			return sh, s.err
		}
		return sh, errors.New("no CPU profile was running")
	}
	pprof.StopCPUProfile()
	s.on = false
	var err error
	sh.NS, sh.Samples, err = profileByLabel(s.buf.Bytes(), partLabel)
	return sh, err
}

// Part is the CPU of one part: Total times its share of the labelled
// samples. The unlabelled samples (GC's background workers, the runtime)
// are thus spread over the parts in proportion to their own CPU.
func (sh cpuShares) Part(p string) time.Duration {
	var labelled int64
	for k, v := range sh.NS {
		if k != "" {
			labelled += v
		}
	}
	if labelled == 0 {
		return 0
	}
	return time.Duration(float64(sh.Total) * float64(sh.NS[p]) / float64(labelled))
}

// Unlabelled is the share of the profiled CPU no part's goroutine used.
func (sh cpuShares) Unlabelled() float64 {
	var all int64
	for _, v := range sh.NS {
		all += v
	}
	if all == 0 {
		return 0
	}
	return float64(sh.NS[""]) / float64(all)
}

// profileByLabel sums a gzipped pprof CPU profile's cpu nanoseconds by the
// value of one label, reading the protobuf by hand (profile.proto: Profile
// 1 sample_type, 2 sample, 6 string_table; Sample 2 value, 3 label; Label 1
// key, 2 str; ValueType 1 type).
func profileByLabel(gz []byte, key string) (map[string]int64, int, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, 0, fmt.Errorf("cpu profile: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, 0, fmt.Errorf("cpu profile: %w", err)
	}
	type sample struct {
		vals   []int64
		labels [][2]int64 // key, str: string table indexes
	}
	var (
		types   []int64 // sample_type[i].type
		samples []sample
		strs    []string
	)
	err = pbFields(raw, func(num, wt int, v uint64, b []byte) error {
		switch {
		case num == 1 && wt == 2:
			return pbFields(b, func(num, wt int, v uint64, _ []byte) error {
				if num == 1 && wt == 0 {
					types = append(types, int64(v))
				}
				return nil
			})
		case num == 2 && wt == 2:
			var s sample
			err := pbFields(b, func(num, wt int, v uint64, b []byte) error {
				switch {
				case num == 2 && wt == 0:
					s.vals = append(s.vals, int64(v))
				case num == 2 && wt == 2: // packed
					for len(b) > 0 {
						x, n := binary.Uvarint(b)
						if n <= 0 {
							return errors.New("bad packed value")
						}
						s.vals = append(s.vals, int64(x))
						b = b[n:]
					}
				case num == 3 && wt == 2:
					var l [2]int64
					if err := pbFields(b, func(num, wt int, v uint64, _ []byte) error {
						if wt == 0 && (num == 1 || num == 2) {
							l[num-1] = int64(v)
						}
						return nil
					}); err != nil {
						return err
					}
					s.labels = append(s.labels, l)
				}
				return nil
			})
			samples = append(samples, s)
			return err
		case num == 6 && wt == 2:
			strs = append(strs, string(b))
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("cpu profile: %w", err)
	}
	str := func(i int64) string {
		if i < 0 || i >= int64(len(strs)) {
			return ""
		}
		return strs[i]
	}
	col, count := -1, -1
	for i, t := range types {
		switch str(t) {
		case "cpu":
			col = i
		case "samples":
			count = i
		}
	}
	if col < 0 {
		return nil, 0, errors.New("cpu profile: no cpu sample type")
	}
	out := map[string]int64{}
	n := 0
	for _, s := range samples {
		if col >= len(s.vals) {
			continue
		}
		if count >= 0 && count < len(s.vals) {
			n += int(s.vals[count])
		}
		part := ""
		for _, l := range s.labels {
			if str(l[0]) == key {
				part = str(l[1])
			}
		}
		out[part] += s.vals[col]
	}
	return out, n, nil
}

// pbFields calls f for each field of a protobuf message: its number, wire
// type, and value (varint, fixed) or bytes (length-delimited).
func pbFields(b []byte, f func(num, wt int, v uint64, data []byte) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("bad field key")
		}
		b = b[n:]
		num, wt := int(key>>3), int(key&7)
		var (
			v    uint64
			data []byte
		)
		switch wt {
		case 0:
			if v, n = binary.Uvarint(b); n <= 0 {
				return errors.New("bad varint")
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return errors.New("short fixed64")
			}
			v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return errors.New("bad length")
			}
			data, b = b[n:n+int(l)], b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return errors.New("short fixed32")
			}
			v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		default:
			return fmt.Errorf("wire type %d", wt)
		}
		if err := f(num, wt, v, data); err != nil {
			return err
		}
	}
	return nil
}

// noteBenchCPU closes the scenario's CPU window of the bench process and
// puts its figures per step into res: the whole process, the load
// generator, the proxies and, when the app runs in the bench, the app. It
// returns the process's CPU over the window.
func noteBenchCPU(e *env, res *Result, steps int) time.Duration {
	sh, err := e.split.end()
	if steps == 0 {
		return sh.Total
	}
	per := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(steps) }
	res.BenchCPUMsPerStep = per(sh.Total)
	if err != nil {
		res.Notes = append(res.Notes, "the bench process's CPU is not split by part: "+err.Error())
		if e.appInBench {
			res.AppCPUMsPerStep = res.BenchCPUMsPerStep
			res.AppCPUSource = "the whole bench process (app + load generator): no CPU profile"
		}
		return sh.Total
	}
	res.LoadGenCPUMsPerStep = per(sh.Part(partBench))
	res.ProxyCPUMsPerStep = per(sh.Part(partProxy))
	res.BenchUnlabelled = sh.Unlabelled()
	res.BenchProfileSamples = sh.Samples
	if e.appInBench {
		res.AppCPUMsPerStep = per(sh.Part(partApp))
		res.AppCPUSource = e.appCPU
	}
	return sh.Total
}
