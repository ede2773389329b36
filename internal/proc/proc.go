// Package proc supervises the child processes of the test harnesses (bench,
// chaos) and reads what Linux reports about them under /proc.
//
// Both harnesses start Cairn nodes and helper programs that must never
// outlive them, even when the harness is interrupted or crashes, so every
// child runs in its own process group (a terminal's Ctrl-C does not reach
// it; it is stopped as a unit, with anything it forked) and gets SIGKILL if
// its parent goes away (Pdeathsig). The package keeps a list of every child
// it started so that StopAll and KillAll can clean up at the end.
//
// Linux only.
package proc

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options says where a child runs and where its output goes.
type Options struct {
	// Dir is the working directory; "" means the caller's.
	Dir string
	// Env is added to the caller's environment (later entries win, so it
	// can override inherited variables).
	Env []string
	// LogPath receives the child's stderr, and its stdout unless Stdout is
	// set. It is created if needed.
	LogPath string
	// Append keeps what LogPath already holds (a node restarted into the
	// same log) instead of truncating it.
	Append bool
	// Stdout, if set, receives stdout instead of LogPath (for a caller
	// that reads the child's output, such as a READY line).
	Stdout io.Writer
	// Banner, if set, writes "=== Banner: name start TIME: cmdline" and
	// "=== Banner: name exited TIME: err" lines to the log, so that the
	// lives of a restarted child can be told apart in one file.
	Banner string
}

// Child is a process started by Start.
type Child struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // set before done is closed
}

var (
	childrenMu sync.Mutex
	children   []*Child
)

// Start starts bin with args as described by o, and records the child for
// StopAll and KillAll. name is only used in messages.
func Start(name string, o Options, bin string, args ...string) (*Child, error) {
	var lf *os.File
	var err error
	if o.Append {
		lf, err = os.OpenFile(o.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	} else {
		lf, err = os.Create(o.LogPath)
	}
	if err != nil {
		return nil, err
	}
	if o.Banner != "" {
		fmt.Fprintf(lf, "=== %s: %s start %s: %s %s\n", o.Banner, name, time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Stderr = lf
	if o.Stdout != nil {
		cmd.Stdout = o.Stdout
	} else {
		cmd.Stdout = lf
	}
	// Pdeathsig is a safety net for a harness that dies without cleaning up
	// (strictly, it fires when the OS thread that started the child exits).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{name: name, logPath: o.LogPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		if o.Banner != "" {
			fmt.Fprintf(lf, "=== %s: %s exited %s: %v\n", o.Banner, name, time.Now().Format(time.RFC3339Nano), c.err)
		}
		lf.Close()
		close(c.done)
	}()
	childrenMu.Lock()
	children = append(children, c)
	childrenMu.Unlock()
	return c, nil
}

// Name is the name given to Start.
func (c *Child) Name() string { return c.name }

// LogPath is the log file given to Start.
func (c *Child) LogPath() string { return c.logPath }

// Pid is the child's process id, which is also its process group id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Done is closed once the child has exited and been reaped.
func (c *Child) Done() <-chan struct{} { return c.done }

// Exited says whether Done is closed.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Err is how the child exited (as from exec.Cmd.Wait); nil while it runs.
func (c *Child) Err() error {
	if !c.Exited() {
		return nil
	}
	return c.err
}

// Signal sends sig to the child's process group, so that whatever it forked
// gets it too. It fails once the child has exited: the group id may since
// have been reused.
func (c *Child) Signal(sig syscall.Signal) error {
	if c.Exited() {
		return fmt.Errorf("%s already exited", c.name)
	}
	return syscall.Kill(-c.Pid(), sig)
}

// Kill sends SIGKILL and waits (at most 10 s) for the child to be reaped.
// SIGCONT goes first: a stopped process dies of SIGKILL just as well, but
// this way nothing in the group is left stopped.
func (c *Child) Kill() {
	_ = c.Signal(syscall.SIGCONT)
	_ = c.Signal(syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
	}
}

// Stop asks the child to exit with SIGTERM and Kills it if it is still
// there after grace. SIGCONT goes first: a SIGSTOPped child (a chaos fault)
// that handles SIGTERM, as Cairn does to shut down cleanly, could not act
// on it and would only be killed after grace.
func (c *Child) Stop(grace time.Duration) {
	if c.Exited() {
		return
	}
	_ = c.Signal(syscall.SIGCONT)
	_ = c.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return
	case <-time.After(grace):
	}
	c.Kill()
}

func allChildren() []*Child {
	childrenMu.Lock()
	defer childrenMu.Unlock()
	return append([]*Child(nil), children...)
}

// StopAll Stops every child still running, all at once, each with grace:
// the orderly cleanup at the end of a run.
func StopAll(grace time.Duration) {
	var wg sync.WaitGroup
	for _, c := range allChildren() {
		wg.Go(func() { c.Stop(grace) })
	}
	wg.Wait()
}

// KillAll SIGKILLs every child still running and waits (at most 5 s each)
// until they are reaped: the last resort (second Ctrl-C, panic), which
// must not hang on a child that ignores SIGTERM.
func KillAll() {
	cs := allChildren()
	for _, c := range cs {
		_ = c.Signal(syscall.SIGCONT)
		_ = c.Signal(syscall.SIGKILL)
	}
	for _, c := range cs {
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// TailFile returns the last n lines of a file (a child's log), or a note
// saying why it cannot be read: it goes into error messages, which should
// carry the log's end rather than fail themselves.
func TailFile(path string, n int) string {
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
