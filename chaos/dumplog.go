package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"

	"github.com/cairn-dev/cairn/fsm"
	raftlog "github.com/cairn-dev/cairn/log"
	"github.com/hashicorp/raft"
)

// dump-log prints the Raft log of a STOPPED node, one entry a line:
//
//	go run ./chaos dump-log -dir DATA_DIR [-from N] [-to N] [-records]
//
// and compare-logs finds where the logs of several stopped nodes differ:
//
//	go run ./chaos compare-logs DATA_DIR1 DATA_DIR2 ...
//
// Use them on copies of data dirs: opening a store takes its lock.

func dumpLogMain(args []string) error {
	fs := flag.NewFlagSet("dump-log", flag.ContinueOnError)
	dir := fs.String("dir", "", "node data dir (holds raft/)")
	from := fs.Uint64("from", 0, "first index (0: the first stored)")
	to := fs.Uint64("to", 0, "last index (0: the last stored)")
	recs := fs.Bool("records", false, "decode command entries into records (JSON)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("-dir is required")
	}
	st, err := raftlog.Open(filepath.Join(*dir, "raft"), raftlog.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	first, _ := st.FirstIndex()
	last, _ := st.LastIndex()
	commit, _ := st.GetCommitIndex()
	term, _ := st.GetUint64([]byte("CurrentTerm"))
	vote, _ := st.Get([]byte("LastVoteCand"))
	voteTerm, _ := st.GetUint64([]byte("LastVoteTerm"))
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	fmt.Fprintf(w, "# %s: first %d last %d persisted-commit %d current-term %d last-vote %s@%d\n", *dir, first, last, commit, term, vote, voteTerm)
	lo, hi := max(*from, first), last
	if *to > 0 {
		hi = min(*to, last)
	}
	for i := lo; i <= hi && i > 0; i++ {
		var l raft.Log
		if err := st.GetLog(i, &l); err != nil {
			fmt.Fprintf(w, "%d ERROR %v\n", i, err)
			continue
		}
		fmt.Fprintf(w, "%d term=%d type=%s len=%d hash=%016x", l.Index, l.Term, l.Type, len(l.Data), hash64(l.Data))
		if *recs && l.Type == raft.LogCommand {
			rs, err := fsm.DecodeEntry(l.Data)
			if err != nil {
				fmt.Fprintf(w, " decode error: %v", err)
			}
			for _, r := range rs {
				b, _ := json.Marshal(r)
				if len(b) > 300 {
					b = append(b[:300], "..."...)
				}
				fmt.Fprintf(w, "\n    %T %s", r, b)
			}
		}
		fmt.Fprintln(w)
	}
	return nil
}

func hash64(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

type logEntry struct {
	term uint64
	typ  raft.LogType
	hash uint64
	ok   bool
}

func readLog(dir string) (map[uint64]logEntry, uint64, uint64, error) {
	st, err := raftlog.Open(filepath.Join(dir, "raft"), raftlog.Options{})
	if err != nil {
		return nil, 0, 0, err
	}
	defer st.Close()
	first, _ := st.FirstIndex()
	last, _ := st.LastIndex()
	out := map[uint64]logEntry{}
	for i := first; i <= last && i > 0; i++ {
		var l raft.Log
		if st.GetLog(i, &l) == nil {
			out[i] = logEntry{term: l.Term, typ: l.Type, hash: hash64(l.Data), ok: true}
		}
	}
	return out, first, last, nil
}

func compareLogsMain(dirs []string) error {
	if len(dirs) < 2 {
		return errors.New("compare-logs needs at least two data dirs")
	}
	logs := make([]map[uint64]logEntry, len(dirs))
	lo, hi := uint64(0), uint64(0)
	for i, d := range dirs {
		l, f, la, err := readLog(d)
		if err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
		logs[i] = l
		fmt.Printf("%s: entries %d..%d\n", d, f, la)
		lo, hi = max(lo, f), max(hi, la)
	}
	diffs := 0
	for i := lo; i <= hi; i++ {
		same := true
		for _, l := range logs[1:] {
			if l[i] != logs[0][i] {
				same = false
			}
		}
		if !same {
			diffs++
			if diffs <= 40 {
				fmt.Printf("index %d differs:", i)
				for j := range logs {
					e := logs[j][i]
					if !e.ok {
						fmt.Printf("  [%d] missing", j)
					} else {
						fmt.Printf("  [%d] term=%d %s %016x", j, e.term, e.typ, e.hash)
					}
				}
				fmt.Println()
			}
		}
	}
	fmt.Printf("%d differing indexes in %d..%d\n", diffs, lo, hi)
	return nil
}

// logComparison is the checker's view of the nodes' Raft logs after they
// were stopped: over the range every node still holds, every index must
// hold the same entry (same term and data) on every node.
type logComparison struct {
	Ranges   map[string][2]uint64
	From, To uint64
	Diffs    int
	SameTerm int // same index and term, different data: Log Matching violated
	Samples  []string
	Err      string
}

func compareClusterLogs(c *cluster) logComparison {
	lc := logComparison{Ranges: map[string][2]uint64{}}
	logs := make([]map[uint64]logEntry, len(c.nodes))
	lo, hi := uint64(0), uint64(1<<63)
	for i, n := range c.nodes {
		l, f, la, err := readLog(n.dataDir)
		if err != nil {
			lc.Err = fmt.Sprintf("%s: %v", n.id, err)
			return lc
		}
		logs[i], lc.Ranges[n.id] = l, [2]uint64{f, la}
		lo, hi = max(lo, f), min(hi, la)
	}
	lc.From, lc.To = lo, hi
	for i := lo; i <= hi && i > 0; i++ {
		same, sameTerm := true, true
		for _, l := range logs[1:] {
			if l[i] != logs[0][i] {
				same = false
				sameTerm = sameTerm && l[i].term == logs[0][i].term
			}
		}
		if same {
			continue
		}
		lc.Diffs++
		if sameTerm {
			lc.SameTerm++
		}
		if len(lc.Samples) < 12 {
			s := fmt.Sprintf("index %d:", i)
			for j, n := range c.nodes {
				e := logs[j][i]
				s += fmt.Sprintf(" %s term=%d %s data=%016x;", n.id, e.term, e.typ, e.hash)
			}
			lc.Samples = append(lc.Samples, s)
		}
	}
	return lc
}
