package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ---------------------------------------------------------------------------
// Network namespaces for partitions (reliability-plan.md §5.8): one namespace
// per node, veth pairs on a bridge in the root namespace. The bridge and
// veths are host-internal virtual links on a private /24; nothing is routed
// off the machine. A partition is a pair of blackhole routes (one in each
// namespace), so both directions fail; healing deletes them.

const (
	nsPrefix = "chaos-n"
	nsBridge = "chaosbr0"
	nsSubnet = "10.201.77" // .1-.3 nodes, .254 the root namespace (app, load)
)

type netns struct {
	routes map[string]bool // "ns|dst" installed blackholes
}

func (n *netns) name(i int) string { return fmt.Sprintf("%s%d", nsPrefix, i) }
func (n *netns) addr(i int) string { return fmt.Sprintf("%s.%d", nsSubnet, i) }
func (n *netns) hostAddr() string  { return nsSubnet + ".254" }

// netnsAvailable says whether partitions can be made here, and why not.
func netnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("no `ip` binary")
	}
	probe := "chaos-probe"
	if _, err := runCmd(5*time.Second, "ip", "netns", "add", probe); err != nil {
		return fmt.Errorf("cannot create a network namespace: %v", err)
	}
	_, _ = runCmd(5*time.Second, "ip", "netns", "del", probe)
	return nil
}

func ip(args ...string) error {
	_, err := runCmd(10*time.Second, "ip", args...)
	return err
}

// setupNetns creates the bridge and three namespaces (removing leftovers of
// an earlier run first).
func setupNetns() (*netns, error) {
	n := &netns{routes: map[string]bool{}}
	n.teardown()
	steps := [][]string{
		{"link", "add", nsBridge, "type", "bridge"},
		{"link", "set", nsBridge, "up"},
		{"addr", "add", n.hostAddr() + "/24", "dev", nsBridge},
	}
	for i := 1; i <= 3; i++ {
		ve, vp := fmt.Sprintf("chv%d", i), fmt.Sprintf("chv%dp", i)
		steps = append(steps,
			[]string{"netns", "add", n.name(i)},
			[]string{"link", "add", ve, "type", "veth", "peer", "name", vp},
			[]string{"link", "set", vp, "master", nsBridge},
			[]string{"link", "set", vp, "up"},
			[]string{"link", "set", ve, "netns", n.name(i)},
			[]string{"-n", n.name(i), "addr", "add", n.addr(i) + "/24", "dev", ve},
			[]string{"-n", n.name(i), "link", "set", ve, "up"},
			[]string{"-n", n.name(i), "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			n.teardown()
			return nil, err
		}
	}
	return n, nil
}

func (n *netns) teardown() {
	for i := 1; i <= 3; i++ {
		_ = ip("netns", "del", n.name(i))
		_ = ip("link", "del", fmt.Sprintf("chv%dp", i))
	}
	_ = ip("link", "del", nsBridge)
}

// partition cuts node i (1-based) off from each of others, both ways.
func (n *netns) partition(i int, others []int) error {
	for _, j := range others {
		for _, r := range [][2]int{{i, j}, {j, i}} {
			key := fmt.Sprintf("%d|%d", r[0], r[1])
			if n.routes[key] {
				continue
			}
			if err := ip("-n", n.name(r[0]), "route", "add", "blackhole", n.addr(r[1])+"/32"); err != nil {
				return err
			}
			n.routes[key] = true
		}
	}
	return nil
}

// heal removes every blackhole route.
func (n *netns) heal() error {
	var errs []string
	for key := range n.routes {
		var a, b int
		fmt.Sscanf(key, "%d|%d", &a, &b)
		if err := ip("-n", n.name(a), "route", "del", "blackhole", n.addr(b)+"/32"); err != nil {
			errs = append(errs, err.Error())
		}
		delete(n.routes, key)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// runCmd runs a short command (ip, git) and returns its combined output.
func runCmd(timeout time.Duration, bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return buf.String(), fmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(buf.String()))
		}
		return buf.String(), nil
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return buf.String(), fmt.Errorf("%s %s: timed out after %s", bin, strings.Join(args, " "), timeout)
	}
}
