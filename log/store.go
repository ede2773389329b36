package log

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/cairn-dev/cairn/internal/durable"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	_ raft.LogStore               = (*Store)(nil)
	_ raft.StableStore            = (*Store)(nil)
	_ raft.CommitTrackingLogStore = (*Store)(nil)
)

// ErrKeyNotFound is returned by Get and GetUint64 for a key that was never
// set. Its text must be exactly "not found": hashicorp/raft compares
// err.Error() against that string to recognise a first boot.
var ErrKeyNotFound = errors.New("not found")

var mSyncs = promauto.NewCounter(prometheus.CounterOpts{
	Name: "cairn_log_syncs_total", Help: "Synced writes of Raft entries to the log: one fsync each, for one or more entries.",
})

// memTableSize is larger than Pebble's 4 MiB default so that a burst of big
// entries is absorbed before a flush, yet small enough that a node's log
// costs little memory (Pebble keeps at most two memtables before stalling).
const memTableSize = 16 << 20

// Options configures Open. The zero value stores on the real disk and logs
// to slog.Default().
type Options struct {
	// FS is the filesystem Pebble uses; nil means the real disk, wrapped in
	// Pebble's disk-health checks. Tests pass vfs.NewMem or vfs.NewStrictMem.
	FS vfs.FS
	// Logger receives Pebble's chatter at debug level and its background
	// errors at error level; nil means slog.Default().
	Logger *slog.Logger
	// Archive, when set, receives the committed entries of every head
	// deletion before they are deleted (nil: compacted entries are gone).
	Archive Archiver
	// Committed returns an index known committed in this log: every entry
	// at or below it that is still stored is committed. Only such entries
	// are archived. Required with Archive.
	//
	// Raft's own commit tracking (StageCommitIndex) is not used: Raft
	// stages a commit index only with RestoreCommittedLogs, which Cairn
	// leaves off, and below an installed snapshot a follower's log may keep
	// divergent entries whatever that index says. raftnode supplies the
	// index of the last entry handed to its FSM (see raftnode/archive.go).
	Committed func() uint64
}

// Archiver keeps entries the log deletes from its head (package archive's
// *Archive). It must be safe for concurrent use: two deletions may archive
// at once, and Append skipping what is at or below Last keeps that right.
type Archiver interface {
	// Last is the highest index archived or recorded as never to be.
	Last() uint64
	// Append archives ascending entries; those at or below Last are
	// skipped and a first entry past Last()+1 records a gap.
	Append(entries []*raft.Log) error
	// Gap records that indexes after Last() through through will never be
	// archived, and why.
	Gap(through uint64, reason string) error
}

// archiveChunkBytes bounds the entries read into memory for one segment
// when a large head is archived: a compaction of 16384 big entries becomes
// several segments rather than one allocation of its whole size.
const archiveChunkBytes = 64 << 20

// Store is a Raft log store and stable store on one Pebble database. It is
// safe for concurrent use; writes are serialised.
type Store struct {
	db *pebble.DB

	// mu serialises writes, so the cached bounds change in commit order,
	// and guards staged.
	mu sync.Mutex
	// staged is the commit index waiting to ride along with the next
	// StoreLogs batch; nil when nothing is staged.
	staged *uint64

	// first and last cache the log bounds (0 when empty) so that Raft's
	// frequent FirstIndex/LastIndex calls do not each open an iterator.
	first, last atomic.Uint64
	// syncs counts synced writes of entries: each is one fsync, however
	// many entries it holds (Raft group-commits what is queued).
	syncs atomic.Uint64

	archive   Archiver
	committed func() uint64
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	fs := o.FS
	if fs == nil {
		fs = vfs.Default
	}
	if err := createDir(fs, dir); err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", dir, err)
	}
	db, err := pebble.Open(dir, &pebble.Options{
		FS:            o.FS, // nil, not fs: Pebble then adds its disk-health checks
		Logger:        pebbleLogger{logger},
		EventListener: eventListener(logger),
		MemTableSize:  memTableSize,
	})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", dir, err)
	}
	if o.Archive != nil && o.Committed == nil {
		_ = db.Close()
		return nil, errors.New("open raft log: an archive needs a Committed func")
	}
	s := &Store{db: db, archive: o.Archive, committed: o.Committed}
	if err := s.loadBounds(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// createDir makes dir if missing and fsyncs the parent of every directory
// it creates. Pebble syncs what it writes inside dir but not dir's own entry
// in its parent, so without this a crash soon after the first boot could
// lose the whole directory, acknowledged entries included.
func createDir(fs vfs.FS, dir string) error {
	var created []string
	for p := dir; ; p = fs.PathDir(p) {
		_, err := fs.Stat(p)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		created = append(created, p)
		if fs.PathDir(p) == p {
			break
		}
	}
	if len(created) == 0 {
		return nil
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range created {
		if err := durable.SyncDirFS(fs, fs.PathDir(p)); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the database. The Store must not be used afterwards.
func (s *Store) Close() error {
	return s.db.Close()
}

// FirstIndex returns the lowest stored index, or 0 if the log is empty.
func (s *Store) FirstIndex() (uint64, error) { return s.first.Load(), nil }

// LastIndex returns the highest stored index, or 0 if the log is empty.
func (s *Store) LastIndex() (uint64, error) { return s.last.Load(), nil }

// GetLog reads the entry at index into l, or returns raft.ErrLogNotFound,
// which Raft relies on to decide that a follower needs a snapshot.
func (s *Store) GetLog(index uint64, l *raft.Log) error {
	v, closer, err := s.db.Get(logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("get log %d: %w", index, err)
	}
	defer closer.Close()
	if err := decodeLog(v, l); err != nil {
		return fmt.Errorf("get log %d: %w", index, err)
	}
	if l.Index != index {
		return fmt.Errorf("get log %d: %w: entry claims index %d", index, errCorrupt, l.Index)
	}
	return nil
}

// Syncs returns how many synced writes of entries the store has made since
// it was opened.
func (s *Store) Syncs() uint64 { return s.syncs.Load() }

// StoreLog stores one entry; see StoreLogs.
func (s *Store) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs durably stores entries, overwriting any with the same index, in
// one synced batch together with the staged commit index, if any, so that a
// crash never leaves a commit index pointing past the entries written with it.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	b := s.db.NewBatch()
	defer b.Close()
	var buf []byte
	lo, hi := uint64(math.MaxUint64), uint64(0)
	for _, l := range logs {
		if l.Index == 0 {
			// 0 is what FirstIndex/LastIndex report for "empty".
			return errors.New("store logs: index 0 is reserved")
		}
		buf = appendLog(buf[:0], l) // Set copies, so buf is reusable
		if err := b.Set(logKey(l.Index), buf, nil); err != nil {
			return fmt.Errorf("store logs: %w", err)
		}
		lo, hi = min(lo, l.Index), max(hi, l.Index)
	}
	if s.staged != nil {
		if err := b.Set(commitKey, binary.BigEndian.AppendUint64(nil, *s.staged), nil); err != nil {
			return fmt.Errorf("store logs: %w", err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store logs %d..%d: %w", lo, hi, err)
	}
	s.staged = nil
	s.syncs.Add(1)
	mSyncs.Inc()

	if first := s.first.Load(); first == 0 || lo < first {
		s.first.Store(lo)
	}
	if hi > s.last.Load() {
		s.last.Store(hi)
	}
	return nil
}

// DeleteRange durably deletes entries min through max inclusive with a
// single range tombstone. Raft uses it both to compact the head after a
// snapshot and to drop a conflicting tail, so the bounds are re-read from
// the database rather than patched.
//
// With an archive, a head deletion (min at or below the first index) first
// archives the entries in it up to the Committed index; a tail deletion
// archives nothing (a conflicting tail was never committed). Entries above
// the Committed index are deleted unarchived and show as a gap.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	end := logUpper
	if max < math.MaxUint64 {
		end = logKey(max + 1)
	}
	// Archiving runs before s.mu is taken: it writes and syncs files, and
	// StoreLogs, the hot path, must not wait for that. The entries it reads
	// are committed, so nothing rewrites them meanwhile, and the archive
	// skips what a concurrent deletion archived already.
	if first := s.first.Load(); s.archive != nil && first != 0 && min <= first && max >= first {
		if err := s.archiveThrough(max); err != nil {
			return fmt.Errorf("delete logs %d..%d: archive first: %w", min, max, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.DeleteRange(logKey(min), end, pebble.Sync); err != nil {
		return fmt.Errorf("delete logs %d..%d: %w", min, max, err)
	}
	return s.loadBounds()
}

// ArchiveCommitted archives the stored entries not yet archived up to the
// Committed index, then records the indexes after them through through as a
// gap: raftnode calls it when the log stops being a trustworthy copy below
// through (a snapshot from the leader that this log does not match).
func (s *Store) ArchiveCommitted(through uint64, reason string) error {
	if s.archive == nil {
		return nil
	}
	if err := s.archiveThrough(through); err != nil {
		return err
	}
	return s.archive.Gap(through, reason)
}

// archiveThrough hands the archive the stored entries after its Last index
// through min(hi, Committed), in chunks of about archiveChunkBytes.
func (s *Store) archiveThrough(hi uint64) error {
	hi = min(hi, s.committed())
	from := s.archive.Last() + 1
	if from > hi {
		return nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logKey(from), UpperBound: logKey(hi + 1)})
	if err != nil {
		return err
	}
	defer it.Close()
	var chunk []*raft.Log
	size := 0
	for it.First(); it.Valid(); it.Next() {
		l := new(raft.Log)
		if err := decodeLog(it.Value(), l); err != nil {
			return fmt.Errorf("archive log %x: %w", it.Key(), err)
		}
		chunk = append(chunk, l)
		size += len(l.Data)
		if size >= archiveChunkBytes {
			if err := s.archive.Append(chunk); err != nil {
				return err
			}
			chunk, size = nil, 0
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if len(chunk) > 0 {
		return s.archive.Append(chunk)
	}
	return nil
}

// loadBounds refreshes the cached first and last index from the database,
// using an iterator bounded to the log range.
func (s *Store) loadBounds() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logLower, UpperBound: logUpper})
	if err != nil {
		return fmt.Errorf("read log bounds: %w", err)
	}
	var first, last uint64
	if it.First() {
		first, err = parseLogKey(it.Key())
	}
	if err == nil && it.Last() {
		last, err = parseLogKey(it.Key())
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("read log bounds: %w", err)
	}
	s.first.Store(first)
	s.last.Store(last)
	return nil
}

// StageCommitIndex remembers index; it is written only with the next
// StoreLogs batch, as Raft's CommitTrackingLogStore contract demands, so it
// costs no extra fsync.
func (s *Store) StageCommitIndex(index uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.staged = &index
	return nil
}

// GetCommitIndex returns the last commit index persisted by StoreLogs, or 0
// if none. It never exceeds LastIndex: a tail truncated after the commit
// index was written must not make Raft apply entries that are gone.
func (s *Store) GetCommitIndex() (uint64, error) {
	v, err := s.getUint64(commitKey)
	if errors.Is(err, ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("get commit index: %w", err)
	}
	return min(v, s.last.Load()), nil
}

// Set durably stores val under key.
func (s *Store) Set(key, val []byte) error {
	if err := s.db.Set(stableKey(key), val, pebble.Sync); err != nil {
		return fmt.Errorf("set %q: %w", key, err)
	}
	return nil
}

// Get returns a copy of the value under key, or ErrKeyNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	return s.get(stableKey(key))
}

// SetUint64 durably stores val under key as 8 big-endian bytes.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value under key, or 0 and ErrKeyNotFound.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	return s.getUint64(stableKey(key))
}

func (s *Store) get(k []byte) ([]byte, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", k[1:], err)
	}
	defer closer.Close()
	return append([]byte{}, v...), nil
}

func (s *Store) getUint64(k []byte) (uint64, error) {
	v, err := s.get(k)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("get %q: want 8 bytes, have %d", k[1:], len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// pebbleLogger routes Pebble's informational messages to slog at debug
// level: they are useful when debugging storage and noise otherwise.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

// Fatalf is called on invariant violations; Pebble expects it not to return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble")
	panic(msg)
}

// eventListener surfaces the few Pebble events an operator must see, which
// would otherwise go to Infof and so be hidden at debug level.
func eventListener(l *slog.Logger) *pebble.EventListener {
	l = l.With("component", "pebble")
	return &pebble.EventListener{
		BackgroundError: func(err error) { l.Error("background error", "err", err) },
		DiskSlow: func(info pebble.DiskSlowInfo) {
			l.Warn("disk slow", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) { l.Warn("write stall", "reason", info.Reason) },
		WriteStallEnd:   func() { l.Info("write stall ended") },
	}
}
