package proc

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wait fails the test if c has not exited within a generous bound.
func wait(t *testing.T, c *Child) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("%s still running", c.Name())
	}
}

func TestStopEndsChild(t *testing.T) {
	c, err := Start("sleep", Options{LogPath: filepath.Join(t.TempDir(), "sleep.log")}, "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	if c.Exited() || c.Err() != nil {
		t.Fatalf("exited at once: %v", c.Err())
	}
	c.Stop(10 * time.Second)
	if !c.Exited() {
		t.Fatal("Stop returned while the child runs")
	}
	if c.Err() == nil {
		t.Fatal("want an error from a child ended by SIGTERM")
	}
	if err := c.Signal(syscall.SIGTERM); err == nil {
		t.Fatal("Signal after exit: want an error")
	}
}

// startReady runs script under sh, with stdout on a pipe, and returns once
// it has printed "ready" (its traps are set). Done waits for whatever the
// script forked as well, since that shares the pipe.
func startReady(t *testing.T, script string) *Child {
	t.Helper()
	pr, pw := io.Pipe()
	c, err := Start(t.Name(), Options{LogPath: filepath.Join(t.TempDir(), "log"), Stdout: pw}, "sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	go func() { <-c.Done(); pw.Close() }()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() || lines.Text() != "ready" {
		c.Kill()
		t.Fatalf("first line %q, want ready", lines.Text())
	}
	go func() {
		for lines.Scan() {
		}
	}()
	return c
}

// A child that ignores SIGTERM is killed after grace, together with what it
// forked.
func TestStopKillsGroupAfterGrace(t *testing.T) {
	c := startReady(t, `trap "" TERM; echo ready; sleep 30; echo survived`)
	start := time.Now()
	c.Stop(200 * time.Millisecond)
	if !c.Exited() {
		t.Fatal("still running after Stop")
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("Stop took %s", d)
	}
	if !strings.Contains(c.Err().Error(), "killed") {
		t.Fatalf("err = %v, want killed", c.Err())
	}
}

// A SIGSTOPped child that handles SIGTERM is continued, so that it shuts
// down on its own rather than being killed when the grace runs out.
func TestStopStoppedChild(t *testing.T) {
	c := startReady(t, `trap "exit 0" TERM; echo ready; while :; do sleep 0.1; done`)
	if err := c.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.Stop(30 * time.Second)
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("Stop of a stopped child took %s", d)
	}
	if c.Err() != nil {
		t.Fatalf("err = %v, want a clean exit from the TERM trap", c.Err())
	}
}

func TestLogAppendBannerAndStdout(t *testing.T) {
	log := filepath.Join(t.TempDir(), "n.log")
	for i := range 2 {
		c, err := Start("n1", Options{LogPath: log, Append: true, Banner: "test", Env: []string{"X=hello"}},
			"sh", "-c", `echo "out $X"; echo err >&2; exit 3`)
		if err != nil {
			t.Fatal(err)
		}
		wait(t, c)
		if c.Err() == nil {
			t.Fatalf("run %d: want exit status 3", i)
		}
	}
	got := TailFile(log, 100)
	for _, want := range []string{"=== test: n1 start ", ": sh -c ", "out hello\n", "\nerr\n", "=== test: n1 exited ", "exit status 3"} {
		if strings.Count(got, want) != 2 {
			t.Errorf("log has %q %d times, want 2:\n%s", want, strings.Count(got, want), got)
		}
	}

	// Without Append the log is truncated; Stdout takes stdout away from it.
	var out bytes.Buffer
	dir := t.TempDir()
	c, err := Start("n2", Options{Dir: dir, LogPath: log, Stdout: &out}, "sh", "-c", `pwd; echo err >&2`)
	if err != nil {
		t.Fatal(err)
	}
	wait(t, c)
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
	if got := TailFile(log, 100); got != "err" {
		t.Errorf("log = %q, want just stderr", got)
	}
	if got := strings.TrimSpace(out.String()); got != dir {
		t.Errorf("stdout = %q, want the working directory %q", got, dir)
	}
}

func TestKillAll(t *testing.T) {
	var cs []*Child
	for range 2 {
		c, err := Start("sleep", Options{LogPath: filepath.Join(t.TempDir(), "k.log")}, "sleep", "30")
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	KillAll()
	for _, c := range cs {
		if !c.Exited() {
			t.Fatal("still running after KillAll")
		}
	}
}

func TestStartFails(t *testing.T) {
	if _, err := Start("x", Options{LogPath: filepath.Join(t.TempDir(), "x.log")}, "/nonexistent/bin"); err == nil {
		t.Fatal("want an error")
	}
	if _, err := Start("x", Options{LogPath: filepath.Join(t.TempDir(), "no", "x.log")}, "true"); err == nil {
		t.Fatal("want an error for a log in a missing directory")
	}
}

func TestTailFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("a\nb\nc\nd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := TailFile(p, 2); got != "c\nd" {
		t.Errorf("TailFile(2) = %q", got)
	}
	if got := TailFile(p, 10); got != "a\nb\nc\nd" {
		t.Errorf("TailFile(10) = %q", got)
	}
	if got := TailFile(filepath.Join(t.TempDir(), "missing"), 2); !strings.HasPrefix(got, "(cannot read ") {
		t.Errorf("TailFile(missing) = %q", got)
	}
}

func TestProcReadings(t *testing.T) {
	pid := os.Getpid()
	// Burn a little CPU so that at least one tick is counted (bounded).
	var ticks uint64
	for deadline := time.Now().Add(10 * time.Second); ticks == 0 && time.Now().Before(deadline); {
		x := 0
		for i := range 10_000_000 {
			x += i
		}
		_ = x
		var err error
		if ticks, err = CPUTicks(pid); err != nil {
			t.Fatal(err)
		}
	}
	if ticks == 0 {
		t.Error("CPUTicks stayed 0")
	}
	if _, err := CPUTicks(-1); err == nil {
		t.Error("CPUTicks(-1): want an error")
	}
	if ct := ClockTicks(); ct <= 0 {
		t.Errorf("ClockTicks = %v", ct)
	}
	rss, err := StatusKB(pid, "VmRSS")
	if err != nil || rss == 0 {
		t.Errorf("VmRSS = %d, %v", rss, err)
	}
	if _, err := StatusKB(pid, "NoSuchKey"); err == nil {
		t.Error("StatusKB(NoSuchKey): want an error")
	}
	if err := ResetPeakRSS(pid); err != nil {
		t.Logf("ResetPeakRSS: %v (kernel without clear_refs 5?)", err)
	}
}
