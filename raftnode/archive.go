package raftnode

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/cairn-dev/cairn/archive"
	"github.com/cairn-dev/cairn/fsm"
	raftlog "github.com/cairn-dev/cairn/log"
	"github.com/hashicorp/raft"
)

// ArchiveConfig says where and for how long the entries Raft compacts away
// are kept (package archive).
type ArchiveConfig struct {
	// Off drops compacted entries, as before the archive existed (the
	// benchmark compares both).
	Off bool
	// Dir holds the segments ("": <DataDir>/archive).
	Dir string
	// MaxAge and MaxBytes bound what is kept (0: keep everything); the
	// oldest whole segments go first.
	MaxAge   time.Duration
	MaxBytes int64
}

// archiveDirName is the archive's directory under the data dir.
const archiveDirName = "archive"

// openArchive opens the archive cfg asks for; nil when it is off.
func openArchive(cfg Config, lg *slog.Logger) (*archive.Archive, error) {
	if cfg.Archive.Off {
		return nil, nil
	}
	dir := cfg.Archive.Dir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, archiveDirName)
	}
	st, err := archive.NewDir(dir)
	if err != nil {
		return nil, err
	}
	return archive.Open(archive.Options{Store: st, MaxAge: cfg.Archive.MaxAge, MaxBytes: cfg.Archive.MaxBytes,
		RecordTimes: recordTimes, Logger: lg})
}

// recordTimes gives the archive's index the times of an entry's first and
// last records (records carry the only clock Apply reads).
func recordTimes(l *raft.Log) (first, last int64, ok bool) {
	if l.Type != raft.LogCommand {
		return 0, 0, false
	}
	recs, err := fsm.DecodeEntry(l.Data)
	if err != nil || len(recs) == 0 {
		return 0, 0, false
	}
	return recs[0].Time(), recs[len(recs)-1].Time(), true
}

// noteSnapshot runs for every snapshot raft stores, the newest one again
// at start. What the log store may archive are entries committed in this
// node's log; the FSM adapter raises that index as raft applies entries,
// which is enough for snapshots this node takes. A snapshot from the
// leader is different: below its index this node's log may still hold
// entries of a deposed leader that were never committed, and raft does
// not check them. By Raft's log matching property, if the log holds the
// snapshot's last entry with the snapshot's term, every entry below it is
// the leader's, so all of them are committed. Otherwise the entries
// committed here are archived now, and the rest through the snapshot's
// index is recorded as a gap: the archive never serves what this log
// cannot vouch for.
func noteSnapshot(store *raftlog.Store, a *raftFSM, lg *slog.Logger) func(index, term uint64) {
	return func(index, term uint64) {
		var l raft.Log
		if err := store.GetLog(index, &l); err == nil && l.Term == term {
			raiseTo(&a.committed, index)
			return
		}
		reason := fmt.Sprintf("this node's log does not vouch for the entries of snapshot %d (term %d): "+
			"a snapshot installed from the leader, or entries compacted before archiving began", index, term)
		if err := store.ArchiveCommitted(index, reason); err != nil {
			lg.Error("archive before a snapshot install failed", "index", index, "err", err)
		}
	}
}

// LogSource reads committed entries in index order: from the archive, then
// from the live log. Point-in-time state is built on its three methods.
type LogSource struct {
	store     *raftlog.Store
	arch      *archive.Archive // nil: archive off
	committed *atomic.Uint64
}

// LogSource returns the node's reader of committed entries.
func (n *Node) LogSource() *LogSource {
	return &LogSource{store: n.store, arch: n.arch, committed: &n.applier.committed}
}

// ArchiveStatus describes the archive (nil when it is off).
func (n *Node) ArchiveStatus() *archive.Status {
	if n.arch == nil {
		return nil
	}
	st := n.arch.Status()
	return &st
}

// ErrLogMissing is wrapped by Entries when an index in the range cannot be
// read (compacted without archive, dropped by retention, in a gap).
var ErrLogMissing = archive.ErrMissing

func (s *LogSource) archived() uint64 {
	if s.arch == nil {
		return 0
	}
	return s.arch.Last()
}

// FirstIndex is the lowest index from which every entry through LastIndex
// can be read: 1 if nothing was ever dropped.
func (s *LogSource) FirstIndex() (uint64, error) {
	logFirst, err := s.store.FirstIndex()
	if err != nil {
		return 0, err
	}
	archLast, readable := uint64(0), uint64(1)
	if s.arch != nil {
		archLast, readable = s.arch.Last(), s.arch.ReadableFrom()
	}
	switch {
	case logFirst == 0: // empty log
		return min(readable, archLast+1), nil
	case readable <= archLast && logFirst <= archLast+1:
		return readable, nil
	case logFirst <= archLast:
		// The archive's newest indexes are a gap or dropped; entries the
		// log still holds below archLast are not vouched for.
		return archLast + 1, nil
	default:
		return logFirst, nil
	}
}

// LastIndex is the highest index known committed here (never an
// uncommitted one): the last entry handed to the FSM, or a snapshot's.
func (s *LogSource) LastIndex() (uint64, error) { return s.committed.Load(), nil }

// Entries calls fn for every entry in [from, to] in order; an index that
// cannot be read, or past LastIndex, is an error wrapping ErrLogMissing (or
// archive.ErrCorrupt for a damaged segment) and fn sees nothing past it.
func (s *LogSource) Entries(from, to uint64, fn func(*raft.Log) error) error {
	if from == 0 {
		return fmt.Errorf("%w: index 0 does not exist; the log starts at 1", ErrLogMissing)
	}
	if last, _ := s.LastIndex(); to > last {
		return fmt.Errorf("%w: index %d is past the last committed index %d", ErrLogMissing, to, last)
	}
	for idx := from; idx <= to; {
		if archLast := s.archived(); idx <= archLast {
			end := min(to, archLast)
			if err := s.arch.Entries(idx, end, fn); err != nil {
				return err
			}
			idx = end + 1
			continue
		}
		var l raft.Log
		err := s.store.GetLog(idx, &l)
		if errors.Is(err, raft.ErrLogNotFound) {
			if s.archived() >= idx {
				continue // archived and compacted meanwhile: read it there
			}
			return fmt.Errorf("%w: index %d is neither in the log nor in the archive", ErrLogMissing, idx)
		}
		if err != nil {
			return err
		}
		if err := fn(&l); err != nil {
			return err
		}
		idx++
	}
	return nil
}
