package main

// What the bench measures of the Cairn process besides its answers: its
// warnings and errors, CPU and memory over time, and its disk footprint.
// Starting and stopping processes and reading /proc is internal/proc.

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-dev/cairn/internal/proc"
)

// logProblems returns the WARN/ERROR lines of a slog text (or JSON) log,
// starting at byte offset from, and how many there were.
func logProblems(path string, from int64, keep int) (lines []string, total int, size int64) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, from
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return nil, 0, size
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") ||
			strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) ||
			strings.Contains(l, "panic:") {
			total++
			if len(lines) < keep {
				lines = append(lines, l)
			}
		}
	}
	return lines, total, size
}

// ---------------------------------------------------------------------------
// CPU and RSS samples

type procSample struct {
	t     time.Time
	ticks uint64
	rssKB uint64
}

// sampler reads a process's CPU time and RSS periodically, so the CPU used
// up to a past instant (the last run's end) can be looked up afterwards.
type sampler struct {
	pid  int
	mu   sync.Mutex
	s    []procSample
	stop chan struct{}
	done chan struct{}
}

func startSampler(pid int, every time.Duration) *sampler {
	sm := &sampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	sm.sample()
	go func() {
		defer close(sm.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-sm.stop:
				return
			case <-t.C:
				sm.sample()
			}
		}
	}()
	return sm
}

func (sm *sampler) sample() procSample {
	ticks, err := proc.CPUTicks(sm.pid)
	if err != nil {
		return procSample{}
	}
	rss, _ := proc.StatusKB(sm.pid, "VmRSS")
	p := procSample{t: time.Now(), ticks: ticks, rssKB: rss}
	sm.mu.Lock()
	sm.s = append(sm.s, p)
	sm.mu.Unlock()
	return p
}

func (sm *sampler) close() {
	close(sm.stop)
	<-sm.done
}

// at returns the first sample taken at or after t (or the last one).
func (sm *sampler) at(t time.Time) procSample {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	for _, p := range sm.s {
		if !p.t.Before(t) {
			return p
		}
	}
	if len(sm.s) == 0 {
		return procSample{}
	}
	return sm.s[len(sm.s)-1]
}

// maxRSS returns the highest sampled RSS between a and b.
func (sm *sampler) maxRSS(a, b time.Time) uint64 {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	var m uint64
	for _, p := range sm.s {
		if !p.t.Before(a) && !p.t.After(b) && p.rssKB > m {
			m = p.rssKB
		}
	}
	return m
}

// ---------------------------------------------------------------------------
// Disk usage

// dirUsage is the apparent size (sum of file sizes) and the allocated size
// (blocks, like du) of everything under dir.
type dirUsage struct{ Apparent, Allocated int64 }

func diskUsage(dir string) dirUsage {
	var u dirUsage
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		u.Apparent += info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			u.Allocated += st.Blocks * 512
		}
		return nil
	})
	return u
}

// machineCPU reads the first line of /proc/stat: the ticks (ClockTicks)
// all CPUs spent busy (user, nice, system, irq, softirq, steal) and in all.
func machineCPU() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, errors.New("unexpected /proc/stat")
	}
	for i, s := range f[1:9] { // user nice system idle iowait irq softirq steal
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		total += v
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total, nil
}
