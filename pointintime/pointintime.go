// Package pointintime rebuilds the projection as it was at a past log
// index. The log is the whole history, so the state at index N is the
// state of a snapshot at or below N (or the empty state, when the log
// is readable from index 1) with the entries after it applied up to N,
// exactly as every replica applied them. States are built in scratch
// Pebble databases under their own directory, never in the live
// projection, and a few are kept for the next reads.
package pointintime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/hashicorp/raft"
)

// Log is the committed log as far as this node can still read it: Raft's
// own log store, or an archive that keeps what Raft compacted away.
type Log interface {
	// FirstIndex is the lowest index still readable (1 if nothing was
	// ever dropped).
	FirstIndex() (uint64, error)
	// LastIndex is the last committed index that may be read.
	LastIndex() (uint64, error)
	// Entries calls fn with every entry in [from, to], in order, and
	// fails if one is missing. It returns fn's error as is.
	Entries(from, to uint64, fn func(*raft.Log) error) error
}

// Snapshots is what Raft's snapshot store offers (raft.SnapshotStore's
// List and Open): the streams it holds are fsm.Snapshot streams.
type Snapshots interface {
	List() ([]*raft.SnapshotMeta, error) // newest first
	Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error)
}

// Checkpoints are copies of the projection kept at past indexes
// (raftnode's): opening a copy of one costs file links, not a restore.
type Checkpoints interface {
	CheckpointIndexes() []uint64 // ascending
	CopyCheckpoint(index uint64, dir string) error
}

var (
	// ErrAhead: the index is past what this node has applied.
	ErrAhead = errors.New("log index not applied yet")
	// ErrCompacted: the log before the index is no longer held and no
	// snapshot covers it (retention dropped it).
	ErrCompacted = errors.New("history no longer held")
	// ErrClosed: the node is shutting down.
	ErrClosed = errors.New("point-in-time states closed")
)

// refusal is an ErrAhead or ErrCompacted with the whole story as its
// text, which the API shows as is.
type refusal struct {
	kind error
	msg  string
}

func refuse(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.kind }

// DefaultMaxStates is how many built states are kept when Config says
// nothing: each is a Pebble database on disk, so a few only.
const DefaultMaxStates = 3

// An ApplyEntries call is one Pebble batch: big batches make a rebuild
// fast, and the byte bound keeps one batch (which holds every write of
// its entries in memory) well under a memtable's worth of entries.
const (
	batchEntries = 16384
	batchBytes   = 16 << 20
)

// Config configures Open.
type Config struct {
	// Dir holds the scratch projections, one subdirectory each. It is
	// emptied by Open (what a crash left there is garbage) and removed by
	// Close.
	Dir       string
	Log       Log
	Snapshots Snapshots
	// Checkpoints, when set, are projections kept at past indexes: a
	// state is built from a copy of the nearest one below it.
	Checkpoints Checkpoints
	// MaxStates bounds the built states kept (0: DefaultMaxStates).
	MaxStates int
	Logger    *slog.Logger
}

// BuildStats say how a state was built.
type BuildStats struct {
	From      string        `json:"from"`       // "checkpoint", "snapshot", "empty", or "state" (a kept state carried forward)
	FromIndex uint64        `json:"from_index"` // the index the build started from
	Entries   int           `json:"entries"`    // log entries read
	Records   int           `json:"records"`    // records applied
	Restore   time.Duration `json:"restore_ns"` // restoring the snapshot
	Apply     time.Duration `json:"apply_ns"`   // reading and applying the entries
	Cached    bool          `json:"cached"`     // this read found the state built already
}

// Source names for BuildStats.From.
const (
	fromSnapshot   = "snapshot"
	fromCheckpoint = "checkpoint"
	fromEmpty      = "empty"
	fromState      = "state"
)

// States builds and keeps point-in-time states. Safe for concurrent use.
type States struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	kept     []*state          // least recently used first
	building map[uint64]*build // by index: concurrent reads of one index build once
	seq      int               // names scratch directories
	closed   bool
	stop     chan struct{} // closed by Close: builds give up
	wg       sync.WaitGroup
	builds   atomic.Int64 // states built (tests count them)
}

// state is one built projection.
type state struct {
	index uint64
	f     *fsm.FSM
	dir   string
	stats BuildStats
	refs  int  // State handles not yet released
	gone  bool // evicted or closed while read: closed on the last release
}

// build is one state being built, and the reads waiting for it.
type build struct {
	done    chan struct{}
	waiters int // each gets a reference when the build succeeds
	st      *state
	err     error
}

// Open starts with no state built.
func Open(cfg Config) (*States, error) {
	if cfg.Log == nil || cfg.Snapshots == nil || cfg.Dir == "" {
		return nil, errors.New("pointintime: Config needs Dir, Log and Snapshots")
	}
	if cfg.MaxStates <= 0 {
		cfg.MaxStates = DefaultMaxStates
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.RemoveAll(cfg.Dir); err != nil {
		return nil, fmt.Errorf("pointintime: clear %s: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("pointintime: %w", err)
	}
	return &States{cfg: cfg, log: cfg.Logger.With("component", "pointintime"),
		building: map[uint64]*build{}, stop: make(chan struct{})}, nil
}

// State is the projection as it was at Index, read only. Release it when
// done: until then it is neither evicted nor carried forward.
type State struct {
	Index uint64
	Build BuildStats
	st    *state
	s     *States
	once  sync.Once
}

// Run returns a run as it was, or nil if it did not exist yet.
func (h *State) Run(id string) (*fsm.Run, error) { return h.st.f.Run(id) }

// History returns a run's history as it was.
func (h *State) History(runID string) ([]fsm.HistoryEntry, error) { return h.st.f.History(runID) }

// Summary returns the state's digest and runs by status. Its Index is
// the projection's own applied index: the last command or configuration
// entry at or below h.Index.
func (h *State) Summary() (fsm.Summary, error) { return h.st.f.Summary() }

// Release returns the state to the cache.
func (h *State) Release() { h.once.Do(func() { h.s.release(h.st) }) }

// At returns the state at a log index, built now or kept from before.
// ErrAhead and ErrCompacted say why an index cannot be built.
func (s *States) At(ctx context.Context, index uint64) (*State, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if st := s.lookup(index); st != nil {
		st.refs++
		s.mu.Unlock()
		stats := st.stats
		stats.Cached = true
		return &State{Index: index, Build: stats, st: st, s: s}, nil
	}
	b := s.building[index]
	if b == nil {
		b = &build{done: make(chan struct{})}
		s.building[index] = b
		s.wg.Add(1)
		go s.run(index, b)
	}
	b.waiters++
	s.mu.Unlock()
	select {
	case <-b.done:
	case <-ctx.Done():
		s.mu.Lock()
		select {
		case <-b.done: // finished meanwhile: a reference was taken for us
			s.mu.Unlock()
			if b.err == nil {
				s.release(b.st)
			}
		default:
			b.waiters--
			s.mu.Unlock()
		}
		return nil, ctx.Err()
	}
	if b.err != nil {
		return nil, b.err
	}
	return &State{Index: index, Build: b.st.stats, st: b.st, s: s}, nil
}

// lookup returns the kept state at index and marks it most recently
// used. Under mu.
func (s *States) lookup(index uint64) *state {
	for i, st := range s.kept {
		if st.index == index {
			s.kept = append(append(s.kept[:i:i], s.kept[i+1:]...), st)
			return st
		}
	}
	return nil
}

// run builds the state at index for b's waiters.
func (s *States) run(index uint64, b *build) {
	defer s.wg.Done()
	st, err := s.buildAt(index)
	s.mu.Lock()
	delete(s.building, index)
	if err == nil && s.closed {
		err = ErrClosed
	}
	var evicted []*state
	if err == nil {
		st.refs = b.waiters
		s.kept = append(s.kept, st)
		evicted = s.evictLocked()
	}
	b.st, b.err = st, err
	close(b.done)
	s.mu.Unlock()
	if err != nil && st != nil {
		st.close(s.log)
	}
	for _, e := range evicted {
		e.close(s.log)
	}
}

// evictLocked drops the least recently used unread states beyond
// MaxStates and returns them to be closed outside mu.
func (s *States) evictLocked() []*state {
	var out []*state
	for i := 0; len(s.kept) > s.cfg.MaxStates && i < len(s.kept); {
		if st := s.kept[i]; st.refs == 0 {
			s.kept = append(s.kept[:i], s.kept[i+1:]...)
			out = append(out, st)
			continue
		}
		i++
	}
	return out
}

func (s *States) release(st *state) {
	s.mu.Lock()
	closeIt := s.releaseLocked(st)
	evicted := s.evictLocked()
	s.mu.Unlock()
	if closeIt {
		st.close(s.log)
	}
	for _, e := range evicted {
		e.close(s.log)
	}
}

// releaseLocked drops a reference; it reports whether st is to be closed
// now (it was evicted while read).
func (s *States) releaseLocked(st *state) bool {
	st.refs--
	return st.refs == 0 && st.gone
}

// plan is where a build starts.
type plan struct {
	base       *state             // a kept state to carry forward, taken out of the cache
	snap       *raft.SnapshotMeta // else a snapshot to restore
	checkpoint uint64             // else a checkpoint to copy (0: none)
	// else the empty projection (index 0)
}

func (p plan) start() uint64 {
	switch {
	case p.base != nil:
		return p.base.index
	case p.snap != nil:
		return p.snap.Index
	}
	return p.checkpoint
}

// buildAt builds the state at index from the nearest start below it.
func (s *States) buildAt(index uint64) (*state, error) {
	const attempts = 3 // a snapshot may be reaped between List and Open
	for i := 1; ; i++ {
		p, err := s.plan(index)
		if err != nil {
			return nil, err
		}
		st, err := s.buildFrom(p, index)
		if err == nil || !errors.Is(err, errOpenSnapshot) || i == attempts {
			return st, err
		}
	}
}

var errOpenSnapshot = errors.New("open snapshot")

// plan picks the start nearest below index: a kept state (consumed: it
// moves on to index), a snapshot, or the empty projection.
func (s *States) plan(index uint64) (plan, error) {
	first, last, err := s.bounds()
	if err != nil {
		return plan{}, err
	}
	if index > last {
		return plan{}, refuse(ErrAhead, "log index %d is past this node's applied index %d", index, last)
	}
	// A start at index k needs the entries k+1..index readable.
	readableAfter := func(k uint64) bool { return k+1 >= first }
	metas, err := s.cfg.Snapshots.List()
	if err != nil {
		return plan{}, fmt.Errorf("pointintime: list snapshots: %w", err)
	}
	var p plan
	found := first <= 1 // the empty projection
	for _, m := range metas {
		if m.Index <= index && readableAfter(m.Index) && (!found || m.Index > p.start()) {
			p.snap, found = m, true
		}
	}
	if s.cfg.Checkpoints != nil {
		for _, c := range s.cfg.Checkpoints.CheckpointIndexes() {
			if c <= index && readableAfter(c) && (!found || c >= p.start()) { // on a tie, links beat a restore
				p, found = plan{checkpoint: c}, true
			}
		}
	}
	s.mu.Lock()
	var best *state
	for _, st := range s.kept {
		if st.index < index && st.refs == 0 && readableAfter(st.index) && (best == nil || st.index > best.index) {
			best = st
		}
	}
	if best != nil && (!found || best.index >= p.start()) {
		s.kept = removeState(s.kept, best)
		p, found = plan{base: best}, true
	}
	s.mu.Unlock()
	if !found {
		return plan{}, refuse(ErrCompacted, "the state at log index %d can no longer be rebuilt on this node: %s",
			index, held(first, metas))
	}
	return p, nil
}

// bounds returns the readable range of the log: [first, last], empty
// (first = last+1) when a log store holds no entry at all and says 0, as
// Raft's does right after a new member installs a snapshot.
func (s *States) bounds() (first, last uint64, err error) {
	if last, err = s.cfg.Log.LastIndex(); err != nil {
		return 0, 0, err
	}
	if first, err = s.cfg.Log.FirstIndex(); err != nil {
		return 0, 0, err
	}
	if first == 0 {
		first = last + 1
	}
	return first, last, nil
}

// held describes what history a node holds, for refusals.
func held(first uint64, metas []*raft.SnapshotMeta) string {
	var indexes []uint64
	lowest := uint64(0)
	for _, m := range metas {
		indexes = append(indexes, m.Index)
		if m.Index+1 >= first && (lowest == 0 || m.Index < lowest) {
			lowest = m.Index
		}
	}
	slices.Sort(indexes)
	var snaps []string
	for _, i := range indexes {
		snaps = append(snaps, fmt.Sprint(i))
	}
	msg := fmt.Sprintf("its log begins at index %d", first)
	if len(snaps) > 0 {
		msg += fmt.Sprintf(" and its snapshots are at %s", strings.Join(snaps, ", "))
	}
	if lowest > 0 {
		msg += fmt.Sprintf("; indexes from %d on can be read", lowest)
	}
	return msg
}

func removeState(list []*state, st *state) []*state {
	for i, x := range list {
		if x == st {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// buildFrom carries p's start forward to index. On error the scratch
// projection is closed and removed (a consumed kept state too).
func (s *States) buildFrom(p plan, index uint64) (_ *state, err error) {
	st := p.base
	defer func() {
		// Apply panics on an entry it cannot apply: that must cost this
		// read, not the node.
		if r := recover(); r != nil {
			if st != nil {
				st.close(s.log)
			}
			err = fmt.Errorf("pointintime: building the state at index %d: %v", index, r)
		}
	}()
	var stats BuildStats
	if st != nil {
		stats = BuildStats{From: fromState, FromIndex: st.index}
	} else {
		if st, err = s.scratch(); err != nil {
			return nil, err
		}
		stats = BuildStats{From: fromEmpty}
		if p.checkpoint > 0 {
			// The scratch projection is reopened on a copy of the
			// checkpoint: links to its sstables, no restore.
			stats = BuildStats{From: fromCheckpoint, FromIndex: p.checkpoint}
			t0 := time.Now()
			if st, err = s.fromCheckpoint(st, p.checkpoint); err != nil {
				return nil, err
			}
			stats.Restore = time.Since(t0)
		}
		if p.snap != nil {
			stats = BuildStats{From: fromSnapshot, FromIndex: p.snap.Index}
			t0 := time.Now()
			if err := s.restore(st.f, p.snap); err != nil {
				st.close(s.log)
				return nil, err
			}
			stats.Restore = time.Since(t0)
		}
	}
	t0 := time.Now()
	if err := s.apply(st.f, stats.FromIndex+1, index, &stats); err != nil {
		st.close(s.log)
		return nil, err
	}
	stats.Apply = time.Since(t0)
	st.index, st.stats = index, stats
	s.builds.Add(1)
	s.log.Info("built the state at a past index", "index", index, "from", stats.From, "from_index", stats.FromIndex,
		"entries", stats.Entries, "records", stats.Records, "restore", stats.Restore, "apply", stats.Apply)
	return st, nil
}

// scratch opens an empty projection in a fresh directory.
func (s *States) scratch() (*state, error) {
	s.mu.Lock()
	s.seq++
	dir := filepath.Join(s.cfg.Dir, fmt.Sprintf("state-%d", s.seq))
	s.mu.Unlock()
	f, err := fsm.Open(dir, fsm.Options{Logger: s.cfg.Logger})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &state{f: f, dir: dir}, nil
}

// fromCheckpoint replaces the empty scratch projection st with one opened
// on a copy of the checkpoint at index. On error st is closed and removed.
func (s *States) fromCheckpoint(st *state, index uint64) (*state, error) {
	if err := st.f.Close(); err != nil {
		os.RemoveAll(st.dir)
		return nil, err
	}
	fail := func(err error) (*state, error) {
		os.RemoveAll(st.dir)
		return nil, err
	}
	if err := os.RemoveAll(st.dir); err != nil {
		return fail(err)
	}
	if err := s.cfg.Checkpoints.CopyCheckpoint(index, st.dir); err != nil {
		return fail(fmt.Errorf("pointintime: %w %d: %v", errOpenSnapshot, index, err))
	}
	f, err := fsm.Open(st.dir, fsm.Options{Logger: s.cfg.Logger})
	if err != nil {
		return fail(err)
	}
	if got, _ := f.Applied(); got != index {
		f.Close()
		return fail(fmt.Errorf("pointintime: checkpoint %d holds index %d", index, got))
	}
	st.f = f
	return st, nil
}

func (s *States) restore(f *fsm.FSM, meta *raft.SnapshotMeta) error {
	_, rc, err := s.cfg.Snapshots.Open(meta.ID)
	if err != nil {
		return fmt.Errorf("pointintime: %w %s: %v", errOpenSnapshot, meta.ID, err)
	}
	defer rc.Close()
	if err := f.Restore(rc); err != nil {
		return fmt.Errorf("pointintime: restore snapshot %s: %w", meta.ID, err)
	}
	return nil
}

// apply applies the entries from..to to f as the live projection did
// (raftnode's adapter): commands as entries, configuration changes as
// index-only entries, Raft's no-ops and barriers not at all. Entry data
// is copied into one reused buffer per batch, so a Log may reuse its own
// and the build allocates nothing per entry once the buffers have grown.
func (s *States) apply(f *fsm.FSM, from, to uint64, stats *BuildStats) error {
	if from > to {
		return nil
	}
	batch := make([]fsm.Entry, 0, 1024)
	var buf []byte
	flush := func() {
		for _, res := range f.ApplyEntries(batch) {
			stats.Records += len(res)
		}
		batch, buf = batch[:0], buf[:0]
	}
	next := from
	err := s.cfg.Log.Entries(from, to, func(l *raft.Log) error {
		if l.Index != next {
			return fmt.Errorf("pointintime: log gave entry %d where %d was due", l.Index, next)
		}
		next++
		stats.Entries++
		switch l.Type {
		case raft.LogCommand:
			if len(buf)+len(l.Data) > cap(buf) && len(batch) > 0 {
				flush() // entries point into buf: never grow it under them
			}
			if len(l.Data) > cap(buf) {
				buf = make([]byte, 0, max(len(l.Data), batchBytes))
			}
			at := len(buf)
			buf = append(buf, l.Data...)
			batch = append(batch, fsm.Entry{Index: l.Index, Data: buf[at:len(buf):len(buf)]})
		case raft.LogConfiguration:
			batch = append(batch, fsm.Entry{Index: l.Index, IndexOnly: true})
		default:
			return nil
		}
		if len(batch) >= batchEntries || len(buf) >= batchBytes {
			flush()
			select {
			case <-s.stop:
				return ErrClosed
			default:
			}
		}
		return nil
	})
	if err == nil && next != to+1 {
		err = fmt.Errorf("pointintime: log ended at entry %d, before %d", next-1, to)
	}
	if err != nil {
		if first, _, ferr := s.bounds(); ferr == nil && first > from && !errors.Is(err, ErrClosed) {
			return refuse(ErrCompacted, "entries from %d were dropped while the state at %d was being built (the log now begins at %d)",
				from, to, first)
		}
		return err
	}
	if len(batch) > 0 {
		flush()
	}
	return nil
}

// close closes a state's projection and removes its directory.
func (st *state) close(lg *slog.Logger) {
	if err := st.f.Close(); err != nil {
		lg.Warn("closing a point-in-time state", "dir", st.dir, "err", err)
	}
	if err := os.RemoveAll(st.dir); err != nil {
		lg.Warn("removing a point-in-time state", "dir", st.dir, "err", err)
	}
}

// Close stops builds, closes every kept state (those still being read
// are closed on their release) and removes Dir.
func (s *States) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	var idle []*state
	busy := false
	for _, st := range s.kept {
		if st.refs == 0 {
			idle = append(idle, st)
		} else {
			st.gone, busy = true, true
		}
	}
	s.kept = nil
	s.mu.Unlock()
	for _, st := range idle {
		st.close(s.log)
	}
	if busy {
		return nil // the states still read are removed on release; Open clears the rest
	}
	return os.RemoveAll(s.cfg.Dir)
}
