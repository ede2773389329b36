package fsm_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cockroachdb/pebble/vfs"
)

// The projection has no WAL, so what survives a crash is what Pebble last
// synced. These tests run a workload on a strict in-memory FS that "crashes"
// at its n-th sync (every later sync is ignored), for every n, then drop all
// that was not synced, reopen and check the projection against a reference
// built by applying the same entries from scratch.

// crashFS counts syncs (files and directories) once armed; at the crashAt-th
// it makes the FS ignore that sync and all later ones.
type crashFS struct {
	vfs.FS
	mem *vfs.MemFS

	mu      sync.Mutex
	syncs   int
	crashAt int // 0: disarmed
	crashed bool
}

func newCrashFS() *crashFS {
	mem := vfs.NewStrictMem()
	return &crashFS{FS: mem, mem: mem}
}

func (c *crashFS) arm(n int) {
	c.mu.Lock()
	c.syncs, c.crashAt, c.crashed = 0, n, false
	c.mu.Unlock()
}

func (c *crashFS) beforeSync() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashAt == 0 || c.crashed {
		return
	}
	if c.syncs++; c.syncs == c.crashAt {
		c.crashed = true
		c.mem.SetIgnoreSyncs(true)
	}
}

// reboot drops everything written since the crash and reports whether the
// crash point was reached at all.
func (c *crashFS) reboot() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	crashed := c.crashed
	c.mem.ResetToSyncedState()
	c.mem.SetIgnoreSyncs(false)
	c.crashAt, c.crashed = 0, false
	return crashed
}

func (c *crashFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return crashFile{f, c}, nil
}

func (c *crashFS) Create(name string) (vfs.File, error) { return c.wrap(c.FS.Create(name)) }
func (c *crashFS) Open(name string, o ...vfs.OpenOption) (vfs.File, error) {
	return c.wrap(c.FS.Open(name, o...))
}
func (c *crashFS) OpenReadWrite(name string, o ...vfs.OpenOption) (vfs.File, error) {
	return c.wrap(c.FS.OpenReadWrite(name, o...))
}
func (c *crashFS) OpenDir(name string) (vfs.File, error) { return c.wrap(c.FS.OpenDir(name)) }
func (c *crashFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	return c.wrap(c.FS.ReuseForWrite(oldname, newname))
}

type crashFile struct {
	vfs.File
	c *crashFS
}

func (f crashFile) Sync() error     { f.c.beforeSync(); return f.File.Sync() }
func (f crashFile) SyncData() error { f.c.beforeSync(); return f.File.SyncData() }
func (f crashFile) SyncTo(n int64) (bool, error) {
	f.c.beforeSync()
	return f.File.SyncTo(n)
}

// smallMemTable makes Pebble flush several times within one restore or a
// few applies.
const smallMemTable = 256 << 10

// bigLog is a log of n entries: an app sync, then events of ~100 KiB that
// each start a run, so a snapshot of it spans several restore batches.
func bigLog(t *testing.T, n int) []fsm.Entry {
	pad := strings.Repeat("x", 100<<10)
	out := []fsm.Entry{{Index: 1, Data: encode(t, syncApp(t0, "app", fnDef("big", "ev/big", 0)))}}
	for i := 2; i <= n; i++ {
		id := fmt.Sprintf("01BIG%021d", i)
		ev := &fsm.EventAccepted{At: t0 + int64(i), ID: id, Name: "ev/big",
			JSON: []byte(`{"name":"ev/big","data":{"pad":"` + pad + `"},"id":"` + id + `","ts":1,"user":{}}`)}
		out = append(out, fsm.Entry{Index: uint64(i), Data: encode(t, ev)})
	}
	return out
}

// reference applies a log one entry at a time and returns the state digest
// and digest chain after each prefix (index 0: empty), and a snapshot of the
// whole log.
type reference struct {
	digest []string
	chain  []uint64
	snap   []byte
}

func buildReference(t *testing.T, log []fsm.Entry) reference {
	f, err := fsm.Open("/ref", fsm.Options{FS: vfs.NewMem(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ref reference
	add := func() {
		d, err := f.StateDigest()
		if err != nil {
			t.Fatal(err)
		}
		_, c := f.Applied()
		ref.digest, ref.chain = append(ref.digest, d), append(ref.chain, c)
	}
	add()
	for _, e := range log {
		f.ApplyEntries([]fsm.Entry{e})
		add()
	}
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	ref.snap = buf.Bytes()
	return ref
}

// checkRecovered reopens the projection after a crash, checks it is the
// reference state at its own applied index, replays the rest of the log
// (as Raft would) and checks it reaches the final reference state.
func checkRecovered(t *testing.T, fs vfs.FS, log []fsm.Entry, ref reference, what string) uint64 {
	t.Helper()
	f, err := fsm.Open("/p", fsm.Options{FS: fs, Logger: quietLogger(), MemTableSize: smallMemTable})
	if err != nil {
		t.Fatalf("%s: reopen: %v", what, err)
	}
	defer f.Close()
	idx, chain := f.Applied()
	d, err := f.StateDigest()
	if err != nil {
		t.Fatal(err)
	}
	if chain != ref.chain[idx] || d != ref.digest[idx] {
		t.Fatalf("%s: reopened at index %d with a projection that is not the state after %d entries", what, idx, idx)
	}
	f.ApplyEntries(log[idx:])
	if d, _ := f.StateDigest(); d != ref.digest[len(log)] {
		t.Fatalf("%s: replay from index %d does not reach the reference state", what, idx)
	}
	return idx
}

// TestCrashDuringApplies crashes at every sync while entries are applied,
// with memtable flushes and snapshot flushes along the way: the projection
// and its applied index must always move together.
func TestCrashDuringApplies(t *testing.T) {
	log := bigLog(t, 12)
	ref := buildReference(t, log)
	for n := 1; ; n++ {
		fs := newCrashFS()
		f, err := fsm.Open("/p", fsm.Options{FS: fs, Logger: quietLogger(), MemTableSize: smallMemTable})
		if err != nil {
			t.Fatal(err)
		}
		fs.arm(n)
		for i, e := range log {
			f.ApplyEntries([]fsm.Entry{e})
			if i == 5 {
				s, err := f.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				s.Release()
			}
		}
		f.Close()
		crashed := fs.reboot()
		checkRecovered(t, fs, log, ref, fmt.Sprintf("crash at sync %d", n))
		if !crashed {
			t.Logf("%d crash points", n-1)
			return
		}
	}
}

// TestCrashDuringRestore crashes at every sync of a Restore (building the
// new copy, the swap, the reopen): after a reboot the projection is the old
// one with its old index or the restored one, whole.
func TestCrashDuringRestore(t *testing.T) {
	log := bigLog(t, 48)
	ref := buildReference(t, log)
	const before = 10 // applied and flushed before the restore
	sawOld, sawNew := false, false
	for n := 1; ; n++ {
		fs := newCrashFS()
		f, err := fsm.Open("/p", fsm.Options{FS: fs, Logger: quietLogger(), MemTableSize: smallMemTable})
		if err != nil {
			t.Fatal(err)
		}
		f.ApplyEntries(log[:before])
		s, err := f.Snapshot() // flush: the old projection is durable at index `before`
		if err != nil {
			t.Fatal(err)
		}
		s.Release()
		fs.arm(n)
		if err := f.Restore(bytes.NewReader(ref.snap)); err != nil {
			t.Fatalf("restore: %v", err)
		}
		f.Close()
		crashed := fs.reboot()
		what := fmt.Sprintf("crash at sync %d", n)
		switch idx := checkRecovered(t, fs, log, ref, what); idx {
		case before:
			sawOld = true
		case uint64(len(log)):
			sawNew = true
		default:
			t.Fatalf("%s: reopened at index %d, neither the old %d nor the restored %d", what, idx, before, len(log))
		}
		if !crashed {
			t.Logf("%d crash points", n-1)
			break
		}
	}
	if !sawOld || !sawNew {
		t.Fatalf("crash points never left the old (%v) or the new (%v) projection", sawOld, sawNew)
	}
}

// TestRestoreErrorKeepsProjection feeds Restore a snapshot cut short: it
// must fail and leave the live projection, and its index, as they were,
// also across a reopen.
func TestRestoreErrorKeepsProjection(t *testing.T) {
	log := bigLog(t, 48)
	ref := buildReference(t, log)
	fs := vfs.NewMem()
	f, err := fsm.Open("/p", fsm.Options{FS: fs, Logger: quietLogger(), MemTableSize: smallMemTable})
	if err != nil {
		t.Fatal(err)
	}
	f.ApplyEntries(log[:10])
	if err := f.Restore(bytes.NewReader(ref.snap[:len(ref.snap)*3/4])); err == nil {
		t.Fatal("Restore accepted a truncated snapshot")
	}
	check := func(when string) {
		idx, chain := f.Applied()
		d, err := f.StateDigest()
		if err != nil {
			t.Fatal(err)
		}
		if idx != 10 || chain != ref.chain[10] || d != ref.digest[10] {
			t.Fatalf("%s a failed restore: index %d, projection changed: %v", when, idx, d != ref.digest[10])
		}
	}
	check("after")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f, err = fsm.Open("/p", fsm.Options{FS: fs, Logger: quietLogger()}); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	check("reopened after")
}
