package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ---------------------------------------------------------------------------
// Subprocesses

// child is a subprocess started by the bench, in its own process group so
// that it (and anything it forks) can be stopped as a unit.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // set when done is closed
	logf    *os.File
}

var (
	childrenMu sync.Mutex
	children   []*child
)

// startChild starts name with args in dir. Its stderr (and stdout unless
// stdout is given) go to logPath.
func startChild(name, dir string, env []string, logPath string, stdout io.Writer, bin string, args ...string) (*child, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = lf
	if stdout != nil {
		cmd.Stdout = stdout
	} else {
		cmd.Stdout = lf
	}
	// Own process group: a terminal's Ctrl-C does not reach it, we stop it
	// ourselves. Pdeathsig is a safety net if the bench dies without cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{}), logf: lf}
	go func() {
		c.err = cmd.Wait()
		lf.Close()
		close(c.done)
	}()
	childrenMu.Lock()
	children = append(children, c)
	childrenMu.Unlock()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's process group, then SIGKILL after grace.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	pgid := c.pid() // Setpgid: the group id is the child's pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.done:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

// killAllChildren is the last-resort cleanup (second Ctrl-C, panic).
func killAllChildren() {
	childrenMu.Lock()
	defer childrenMu.Unlock()
	for _, c := range children {
		if !c.exited() {
			_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		}
	}
}

// stopAllChildren stops every child still running, gracefully.
func stopAllChildren() {
	childrenMu.Lock()
	cs := append([]*child(nil), children...)
	childrenMu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop(10 * time.Second) }()
	}
	wg.Wait()
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

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
// /proc readings

var clockTicks = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100 // USER_HZ on every mainstream Linux build
}()

// cpuTicks returns utime+stime of pid, in clock ticks.
func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces and parentheses: the
	// fields we want come after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/pid/stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): field n is f[n-3]; utime=14, stime=15.
	if len(f) < 13 {
		return 0, errors.New("short /proc/pid/stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad utime/stime in /proc/pid/stat")
	}
	return ut + st, nil
}

// statusKB reads a "Key:   N kB" line of /proc/pid/status.
func statusKB(pid int, key string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseUint(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", key, pid)
}

// resetPeakRSS resets VmHWM to the current RSS (Linux >= 4.0).
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

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
	ticks, err := cpuTicks(sm.pid)
	if err != nil {
		return procSample{}
	}
	rss, _ := statusKB(sm.pid, "VmRSS")
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
