package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/cairn-dev/cairn/internal/durable"
	"io"
	"os"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// Snapshot format: a magic header, then every key/value of the projection
// as [uvarint len][key][uvarint len][value]. It is streamed from a Pebble
// snapshot, so memory stays bounded whatever the projection's size.
//
// The header names the projection's layout. CAIRNSNAP2 has the split queues
// (qt/, qf/: queues.go). A node of a release before them reads CAIRNSNAP1
// only, so it refuses such a snapshot, rather than restore a projection
// whose unclaimed calls it would never see, and catches up once upgraded.
// This release restores both; an older layout is split after the swap.
const (
	snapshotMagic   = "CAIRNSNAP2"
	snapshotMagicV1 = "CAIRNSNAP1" // one due queue (q/)
)

// Snapshot is a point-in-time view of the projection, consistent with the
// applied index stored in it.
type Snapshot struct {
	snap *pebble.Snapshot
	done func()
}

// Snapshot makes the projection durable up to now (Raft may truncate the log
// behind a snapshot, and projection writes are not fsynced one by one) and
// returns a consistent view to stream. Release it when done: Restore waits.
func (f *FSM) Snapshot() (*Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.db.Flush(); err != nil {
		return nil, fmt.Errorf("fsm: flush before snapshot: %w", err)
	}
	f.snaps.Add(1)
	return &Snapshot{snap: f.db.NewSnapshot(), done: f.snaps.Done}, nil
}

// WriteTo streams the snapshot to w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	n := int64(0)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return 0, err
	}
	it, err := s.snap.NewIter(nil)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var tmp [binary.MaxVarintLen64]byte
	for ok := it.First(); ok; ok = it.Next() {
		for _, b := range [][]byte{it.Key(), it.Value()} {
			m, _ := bw.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(b)))])
			k, err := bw.Write(b)
			if err != nil {
				return n, err
			}
			n += int64(m + k)
		}
	}
	if err := it.Error(); err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// Release frees the snapshot.
func (s *Snapshot) Release() {
	s.snap.Close()
	s.done()
}

// A Restore is built beside the live projection and swapped in, so that a
// crash at any instant leaves either the old projection with its own
// applied index or the new one complete, never a mix:
//
//	dir.restoring  being filled; a crash leaves it incomplete: discarded
//	dir.ready      complete and synced (renamed from .restoring); from here
//	               on it wins: the live dir is removed and it takes its name
const (
	restoringSuffix = ".restoring"
	readySuffix     = ".ready"
)

// Restore replaces the whole projection with a snapshot stream. On an error
// before the swap the live projection is left as it was.
func (f *FSM) Restore(r io.Reader) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	br := bufio.NewReaderSize(r, 1<<16)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return fmt.Errorf("fsm: not a cairn snapshot: %w", err)
	}
	if m := string(magic); m != snapshotMagic && m != snapshotMagicV1 {
		return fmt.Errorf("fsm: snapshot header %q: not a cairn snapshot, or one from a newer release (this one reads %s and %s)",
			m, snapshotMagicV1, snapshotMagic)
	}
	tmp, ready := f.dir+restoringSuffix, f.dir+readySuffix
	if err := f.fs.RemoveAll(tmp); err != nil {
		return err
	}
	st, err := loadAside(f.fs, tmp, f.memTable, br)
	if err != nil {
		f.fs.RemoveAll(tmp)
		return err
	}
	if err := f.fs.Rename(tmp, ready); err != nil {
		f.fs.RemoveAll(tmp)
		return err
	}
	if err := syncDir(f.fs, f.dir); err != nil {
		return err // .ready may or may not survive a crash; both are fine
	}
	// The new projection is durable. A failure from here on cannot leave
	// the old one in use (Raft takes the restore as done once we return),
	// so it stops the node; Open finishes the swap.
	f.snaps.Wait() // snapshots being persisted read the old database
	f.lockDB()
	defer f.dbMu.Unlock()
	f.rows.reset() // views now miss it and wait on dbMu for the new projection
	if err := f.db.Close(); err != nil {
		panic(fmt.Sprintf("fsm: restore: close: %v", err))
	}
	f.db = nil
	if err := finishSwap(f.fs, f.dir); err != nil {
		panic(fmt.Sprintf("fsm: restore: swap: %v", err))
	}
	if f.db, err = openPebble(f.fs, f.dir, f.memTable); err != nil {
		panic(fmt.Sprintf("fsm: restore: reopen: %v", err))
	}
	if err := indexRuns(f.db); err != nil {
		panic(fmt.Sprintf("fsm: restore: index runs: %v", err))
	}
	if err := splitQueues(f.db); err != nil {
		panic(fmt.Sprintf("fsm: restore: split queues: %v", err))
	}
	f.applied = st
	f.addHints(DueHints{All: true})
	f.fns.reset()
	f.lims.reset()
	f.notify()
	return nil
}

// lockDB takes dbMu for writing. It polls rather than calling Lock: a
// pending Lock blocks new readers, and a view that reads again inside a
// scan callback would then deadlock with it.
func (f *FSM) lockDB() {
	for !f.dbMu.TryLock() {
		time.Sleep(time.Millisecond)
	}
}

// loadAside writes a snapshot stream into a fresh database at dir and
// makes it durable (flushed, closed). It returns the applied index it holds.
func loadAside(fs vfs.FS, dir string, memTable uint64, br *bufio.Reader) (appliedState, error) {
	db, err := openPebble(fs, dir, memTable)
	if err != nil {
		return appliedState{}, err
	}
	st, err := load(db, br)
	if err == nil {
		err = db.Flush() // no WAL: only flushed data survives
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return st, err
}

func load(db *pebble.DB, br *bufio.Reader) (appliedState, error) {
	b := db.NewBatch()
	defer func() { b.Close() }()
	for {
		k, err := readChunk(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return appliedState{}, fmt.Errorf("fsm: snapshot key: %w", err)
		}
		v, err := readChunk(br)
		if err != nil {
			return appliedState{}, fmt.Errorf("fsm: snapshot value: %w", err)
		}
		if err := b.Set(k, v, nil); err != nil {
			return appliedState{}, err
		}
		if b.Len() > 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return appliedState{}, err
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return appliedState{}, err
	}
	st, err := readApplied(db)
	if err == nil && st.Index == 0 {
		err = errors.New("fsm: snapshot has no applied index")
	}
	return st, err
}

// finishSwap completes a Restore that was cut short: a complete .ready
// copy replaces dir; an incomplete .restoring one is dropped.
func finishSwap(fs vfs.FS, dir string) error {
	ready := dir + readySuffix
	if _, err := fs.Stat(ready); err == nil {
		if err := fs.RemoveAll(dir); err != nil {
			return err
		}
		if err := fs.Rename(ready, dir); err != nil {
			return err
		}
		if err := syncDir(fs, dir); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return fs.RemoveAll(dir + restoringSuffix)
}

// syncDir makes renames and removals of dir's entries durable by syncing
// its parent directory.
func syncDir(fs vfs.FS, dir string) error { return durable.SyncDirFS(fs, fs.PathDir(dir)) }

func readChunk(r *bufio.Reader) ([]byte, error) {
	l, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if l > 1<<30 {
		return nil, errors.New("fsm: snapshot chunk too large")
	}
	b := make([]byte, l)
	_, err = io.ReadFull(r, b)
	return b, err
}

// Checkpoint writes the projection as it is now into dir, which must not
// exist, and returns the applied index it holds. Pebble hard-links the
// sstables, so a checkpoint costs a few file links until compactions
// rewrite the files it shares with the live projection. Without a WAL only
// flushed data would be captured, so it flushes first, under the lock that
// keeps Apply out: the checkpoint is exactly the state at its index.
func (f *FSM) Checkpoint(dir string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.db.Flush(); err != nil {
		return 0, fmt.Errorf("fsm: flush before checkpoint: %w", err)
	}
	if err := f.db.Checkpoint(dir); err != nil {
		return 0, fmt.Errorf("fsm: checkpoint: %w", err)
	}
	return f.applied.Index, nil
}
