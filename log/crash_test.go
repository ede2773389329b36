package log

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/raft"
)

// crashLog is the entry the crash test writes at index i. Its size varies
// so that some runs cross memtable flushes, and its bytes depend on i so a
// torn or misplaced entry is detected.
func crashLog(i uint64) *raft.Log {
	data := make([]byte, (i*7919)%(48<<10))
	for j := range data {
		data[j] = byte(i + uint64(j)*31)
	}
	return &raft.Log{Index: i, Term: i/100 + 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Unix(0, int64(i))}
}

// crashFS simulates power loss on a strict in-memory filesystem: after
// crash, nothing written since the last fsync survives the next open.
type crashFS struct{ *vfs.MemFS }

func (fs crashFS) crash(t *testing.T, s *Store) {
	t.Helper()
	fs.SetIgnoreSyncs(true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fs.ResetToSyncedState()
	fs.SetIgnoreSyncs(false)
}

func openOn(t *testing.T, fs vfs.FS) *Store {
	t.Helper()
	s, err := Open("db", Options{FS: fs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// progress is what the writer has been told is durable.
type progress struct {
	mu     sync.Mutex
	last   uint64 // highest index whose StoreLogs returned
	commit uint64 // commit index staged with that StoreLogs
	term   uint64 // last value whose SetUint64 returned
}

func (p *progress) get() (last, commit, term uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last, p.commit, p.term
}

func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for round := range 4 {
		fs := crashFS{vfs.NewStrictMem()}
		s := openOn(t, fs)

		var p progress
		stop := make(chan struct{})
		done := make(chan error, 1)
		batchRNG := rand.New(rand.NewPCG(seed, uint64(round)+1))
		go func() {
			next := uint64(1)
			for {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				// Like a Raft leader: stage the commit index reached so far,
				// then append a batch; sometimes record a new term.
				commit := next - 1
				if err := s.StageCommitIndex(commit); err != nil {
					done <- err
					return
				}
				var batch []*raft.Log
				for range 1 + batchRNG.IntN(8) {
					batch = append(batch, crashLog(next))
					next++
				}
				if err := s.StoreLogs(batch); err != nil {
					done <- err
					return
				}
				p.mu.Lock()
				p.last, p.commit = next-1, commit
				p.mu.Unlock()
				// Only now and then, so that its sync does not hide an
				// unsynced StoreLogs before it.
				if batchRNG.IntN(8) == 0 {
					if err := s.SetUint64([]byte("term"), next); err != nil {
						done <- err
						return
					}
					p.mu.Lock()
					p.term = next
					p.mu.Unlock()
				}
			}
		}()

		// Crash at a random moment, usually while a write is in flight.
		// Only what was acknowledged before syncs stop counting must survive.
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		ackLast, ackCommit, ackTerm := p.get()
		fs.SetIgnoreSyncs(true)
		close(stop)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		fs.crash(t, s)

		s = openOn(t, fs)
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		t.Logf("round %d: acknowledged %d entries, %d survived", round, ackLast, last)
		if last < ackLast || (last > 0 && first != 1) {
			t.Fatalf("after crash log is %d..%d, want 1..>=%d", first, last, ackLast)
		}
		for i := uint64(1); i <= last; i++ {
			checkLog(t, s, crashLog(i))
		}
		if c, err := s.GetCommitIndex(); err != nil || c < ackCommit || c > last {
			t.Fatalf("commit index %d, %v: want %d..%d", c, err, ackCommit, last)
		}
		if term, err := s.GetUint64([]byte("term")); ackTerm > 0 && (err != nil || term < ackTerm) {
			t.Fatalf("term %d, %v: want >= %d", term, err, ackTerm)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCrashAfterDeleteRange(t *testing.T) {
	fs := crashFS{vfs.NewStrictMem()}
	s := openOn(t, fs)
	if err := s.StoreLogs(testLogs(1, 100)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 50); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(90, 100); err != nil {
		t.Fatal(err)
	}
	fs.crash(t, s)

	s = openOn(t, fs)
	defer s.Close()
	checkBounds(t, s, 51, 89)
	checkMissing(t, s, 50)
	checkMissing(t, s, 90)
	checkLog(t, s, testLog(51))
	checkLog(t, s, testLog(89))
}
