package fsm

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/vmihailenco/msgpack/v5"
)

// Entry is one committed log entry handed to Apply.
type Entry struct {
	Index uint64
	Data  []byte
	// IndexOnly marks an entry of Raft's own (a configuration change): it
	// moves the applied index and nothing else, not even the digest chain,
	// so that the projection's index follows every entry Raft hands over.
	IndexOnly bool
}

// Options configure Open.
type Options struct {
	FS     vfs.FS // nil: the real disk; tests pass a crashable in-memory one
	Logger *slog.Logger
	// MemTableSize is Pebble's memtable size (0: 64 MiB). Tests lower it so
	// that flushes happen in the middle of applies and restores.
	MemTableSize uint64
}

// FSM owns the projection database.
type FSM struct {
	// dbMu guards the db pointer against Restore's swap: views read under
	// RLock; Restore takes the write side (see lockDB).
	dbMu     sync.RWMutex
	db       *pebble.DB
	fs       vfs.FS
	dir      string
	memTable uint64
	logger   *slog.Logger
	// snaps counts Snapshots not yet released: Restore waits for them
	// before it closes the database they read from.
	snaps sync.WaitGroup

	mu      sync.Mutex // serializes Apply with Restore
	applied appliedState
	notify  func()
	// hints say where calls were queued since the executor last took
	// them (TakeDueHints).
	hintMu sync.Mutex
	hints  DueHints
	fns    fnCache
	lims   limitsCache
	rows   rowCache // the runs and calls Apply wrote last, encoded (rowcache.go)
	// rowCacheOff: Apply reads every row from Pebble (for tests to compare).
	rowCacheOff bool
}

// appliedState is persisted under keyApplied in the same batch as the writes
// of the entries it covers, so the projection and its index never disagree.
type appliedState struct {
	Index  uint64 `msgpack:"i"`
	Digest uint64 `msgpack:"d"` // chain over (index, data) of applied entries
}

// Pebble charges its memtables (up to two while one is flushed) to the
// block cache. Its default cache, 8 MB, is less than one of our memtables,
// so it cached nothing at all and every read decompressed its block again;
// this one keeps blockCacheBytes - 2*memTableBytes for blocks.
const (
	memTableBytes   = 64 << 20
	blockCacheBytes = 2*memTableBytes + 32<<20
)

// Open opens (or creates) the projection in dir. It first finishes or
// discards a Restore that a crash interrupted (see finishSwap).
func Open(dir string, o Options) (*FSM, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if err := finishSwap(o.FS, dir); err != nil {
		return nil, fmt.Errorf("fsm: open %s: %w", dir, err)
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = memTableBytes
	}
	db, err := openPebble(o.FS, dir, o.MemTableSize)
	if err != nil {
		return nil, fmt.Errorf("fsm: open %s: %w", dir, err)
	}
	// Pebble syncs its own directory, not the entry naming it.
	if err := syncDir(o.FS, dir); err != nil {
		db.Close()
		return nil, fmt.Errorf("fsm: open %s: %w", dir, err)
	}
	f := &FSM{db: db, fs: o.FS, dir: dir, memTable: o.MemTableSize, logger: o.Logger, notify: func() {},
		hints: DueHints{All: true}} // read every queue first
	if err := indexRuns(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("fsm: open %s: index runs: %w", dir, err)
	}
	if err := splitQueues(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("fsm: open %s: split queues: %w", dir, err)
	}
	if f.applied, err = readApplied(db); err != nil {
		db.Close()
		return nil, err
	}
	return f, nil
}

// openPebble opens a projection database. No WAL: the Raft log is the
// durable copy of everything applied here. After a crash the projection is
// whatever was last flushed, with its applied index, and Raft re-applies the
// entries after it (Snapshot flushes first, so Raft never drops an entry the
// projection lacks).
func openPebble(fs vfs.FS, dir string, memTable uint64) (*pebble.DB, error) {
	cache := pebble.NewCache(blockCacheBytes)
	defer cache.Unref() // the DB holds its own reference
	return pebble.Open(dir, &pebble.Options{FS: fs, Logger: quietLogger{}, DisableWAL: true, MemTableSize: memTable, Cache: cache})
}

// readApplied reads the applied index stored in db (zero if none).
func readApplied(db *pebble.DB) (appliedState, error) {
	var st appliedState
	v, closer, err := db.Get(keyApplied)
	if err == pebble.ErrNotFound {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	defer closer.Close()
	if err := msgpack.Unmarshal(v, &st); err != nil {
		return st, fmt.Errorf("fsm: read applied index: %w", err)
	}
	return st, nil
}

// Close flushes the projection (there is no WAL to replay it from) and
// closes the database.
func (f *FSM) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.db.Flush(); err != nil {
		f.db.Close()
		return err
	}
	return f.db.Close()
}

// SetNotify sets a function called after every applied batch. It must not
// block: the executor uses it as a non-blocking wake-up.
func (f *FSM) SetNotify(fn func()) {
	f.mu.Lock()
	f.notify = fn
	f.mu.Unlock()
}

// Applied returns the index of the last applied entry and the digest chain.
func (f *FSM) Applied() (index, digest uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied.Index, f.applied.Digest
}

// ApplyEntries applies committed entries in order, all in one Pebble batch,
// and returns one []Result per entry (nil for entries already in the
// projection, which a restart hands us again).
func (f *FSM) ApplyEntries(entries []Entry) [][]Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.db.NewIndexedBatch()
	defer b.Close()
	out := make([][]Result, len(entries))
	st := f.applied
	due := NoHints()
	synced := new(bool)    // an app synced in this batch: bypass the function cache
	limitsSet := new(bool) // the run limits changed in this batch: bypass their cache
	parts := map[string]int{}
	written := map[string][]byte{} // rows written, for the row cache
	rows := &f.rows
	if f.rowCacheOff {
		written, rows = nil, nil
	}
	decoded := make([][]Record, len(entries))
	for i, e := range entries {
		if e.Index <= st.Index || e.IndexOnly {
			continue
		}
		recs, err := DecodeEntry(e.Data)
		if err != nil {
			panic(fmt.Sprintf("fsm: entry %d: %v", e.Index, err))
		}
		decoded[i] = recs
	}
	var pre *prefetched
	if rows != nil {
		pre = f.prefetch(decoded)
	}
	for i, e := range entries {
		if e.Index <= st.Index {
			continue
		}
		if e.IndexOnly {
			st.Index = e.Index
			continue
		}
		recs := decoded[i]
		tx := &txn{b: b, index: e.Index, due: &due, fns: &f.fns, synced: synced,
			lims: &f.lims, limitsSet: limitsSet, parts: parts, written: written, rows: rows, pre: pre}
		res := make([]Result, len(recs))
		for j, r := range recs {
			res[j] = tx.apply(r)
		}
		out[i] = res
		st = appliedState{Index: e.Index, Digest: chain(st.Digest, e.Index, e.Data)}
	}
	if st.Index == f.applied.Index {
		return out
	}
	mustSet(b, keyApplied, st)
	f.rows.drop(written)
	if err := b.Commit(pebble.NoSync); err != nil {
		panic(fmt.Sprintf("fsm: commit: %v", err))
	}
	f.rows.put(written)
	f.applied = st
	if *synced {
		f.fns.reset()
	}
	if *limitsSet {
		f.lims.reset()
	}
	f.addHints(due)
	f.notify()
	return out
}

func chain(prev, index uint64, data []byte) uint64 {
	h := fnv.New64a()
	var buf [16]byte
	binary.BigEndian.PutUint64(buf[:8], prev)
	binary.BigEndian.PutUint64(buf[8:], index)
	h.Write(buf[:])
	h.Write(data)
	return h.Sum64()
}

func mustSet(b *pebble.Batch, k []byte, v any) {
	raw, err := msgpack.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fsm: encode %q: %v", k, err))
	}
	if err := b.Set(k, raw, nil); err != nil {
		panic(fmt.Sprintf("fsm: set %q: %v", k, err))
	}
}

// quietLogger keeps Pebble's informational chatter out of our logs.
type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{}) {}
func (quietLogger) Errorf(format string, args ...interface{}) {
	slog.Error(fmt.Sprintf("pebble: "+format, args...))
}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
