// Package archive keeps the Raft log's committed entries after Raft
// compacts them away behind a snapshot: the log is Cairn's audit trail.
//
// Entries arrive from the log store (package log) just before it deletes the
// head of the log. Each batch becomes an immutable, checksummed segment in a
// Store (a directory today, an object store later), and a manifest indexes
// the segments by log index and record time, notes the ranges this node
// never had committed in its log (gaps), and what retention dropped.
//
// Write order makes a crash harmless: segment (synced), then a new manifest
// naming it (synced), and only then does the log store delete the range. A
// segment or manifest that no current manifest names is a leftover and is
// removed at Open; the entries it held are still in the log and are archived
// again.
package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Options configures Open.
type Options struct {
	Store Store
	// MaxAge drops segments whose newest record is older than this (0:
	// keep whatever their age).
	MaxAge time.Duration
	// MaxBytes drops the oldest segments while the archive holds more
	// than this many bytes of segments (0: no limit).
	MaxBytes int64
	// RecordTimes returns the times (unix ms) of an entry's first and last
	// records, false for an entry without records (Raft's own). Nil: the
	// entry's AppendedAt.
	RecordTimes func(*raft.Log) (first, last int64, ok bool)
	Logger      *slog.Logger
	// Now is the clock retention reads (nil: time.Now).
	Now func() time.Time
}

// Segment is the manifest's row for one segment.
type Segment struct {
	Name  string `json:"name"`
	First uint64 `json:"first_index"`
	Last  uint64 `json:"last_index"`
	// FirstTime and LastTime are the times (unix ms) of the first and last
	// records in the segment; 0 when it holds no records.
	FirstTime int64  `json:"first_time"`
	LastTime  int64  `json:"last_time"`
	Bytes     int64  `json:"bytes"`
	SHA256    string `json:"sha256"`
}

// Gap is a range of indexes this archive will never hold: entries that
// were not committed in this node's log when they left it (a follower
// that installed the leader's snapshot), or were gone before archiving
// began.
type Gap struct {
	From    uint64 `json:"from_index"`
	Through uint64 `json:"through_index"`
	Reason  string `json:"reason"`
	At      int64  `json:"at"` // unix ms
}

// Dropped sums what retention removed.
type Dropped struct {
	Segments int    `json:"segments"`
	Bytes    int64  `json:"bytes"`
	Through  uint64 `json:"through_index"` // last index of the newest dropped segment
	LastAt   int64  `json:"last_drop_at"`  // unix ms; 0: never
}

// manifest is the archive's index, stored as a new manifest-<seq>.json on
// every change (a Store never overwrites a name).
type manifest struct {
	Version  int       `json:"version"`
	Seq      uint64    `json:"seq"`
	Segments []Segment `json:"segments"` // ascending, non-overlapping
	Gaps     []Gap     `json:"gaps,omitempty"`
	// Last is the highest index covered: archived, in a gap, or dropped.
	Last    uint64  `json:"last_index"`
	Dropped Dropped `json:"dropped"`
}

const manifestVersion = 1

// Archive is the archive of one node's log. It is safe for concurrent use.
type Archive struct {
	o   Options
	log *slog.Logger

	mu sync.Mutex
	m  manifest
}

// Open reads the newest manifest, removes what no manifest names (a crash
// between writing a segment and naming it), and applies retention.
func Open(o Options) (*Archive, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &Archive{o: o, log: o.Logger.With("component", "archive"), m: manifest{Version: manifestVersion}}
	names, err := o.Store.List()
	if err != nil {
		return nil, err
	}
	var manifests []string
	for _, n := range names {
		if strings.HasPrefix(n, manifestPrefix) && strings.HasSuffix(n, manifestSuffix) {
			manifests = append(manifests, n)
		}
	}
	if len(manifests) > 0 {
		newest := manifests[len(manifests)-1] // names sort by seq
		b, err := o.Store.Get(newest)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &a.m); err != nil {
			return nil, fmt.Errorf("archive: manifest %s: %w", newest, err)
		}
		if a.m.Version != manifestVersion {
			return nil, fmt.Errorf("archive: manifest %s: unknown version %d", newest, a.m.Version)
		}
	}
	named := map[string]bool{manifestName(a.m.Seq): true}
	if len(manifests) == 0 {
		// Without a manifest at most one segment can be a leftover (the
		// first one, before its manifest was written); more means the
		// manifest was lost, and removing them would lose the archive.
		segs := 0
		for _, n := range names {
			if strings.HasPrefix(n, segmentPrefix) {
				segs++
			}
		}
		if segs > 1 {
			return nil, fmt.Errorf("archive: %d segments and no manifest; refusing to remove them", segs)
		}
	}
	for _, s := range a.m.Segments {
		named[s.Name] = true
	}
	for _, n := range names {
		if named[n] {
			continue
		}
		if strings.HasPrefix(n, segmentPrefix) {
			a.log.Info("removing a segment no manifest names (a crash before it was recorded, or a drop not finished)", "name", n)
		}
		if err := o.Store.Delete(n); err != nil {
			return nil, err
		}
	}
	if err := a.retain(); err != nil {
		return nil, err
	}
	return a, nil
}

// Last is the highest index the archive covers (archived, in a gap, or
// dropped); 0 for an empty archive. The log store archives from Last()+1.
func (a *Archive) Last() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m.Last
}

// Append archives entries as one segment and then applies retention.
// Entries must be in ascending index order. Those at or below Last are
// skipped (already archived: a crash after the segment was written and
// before the log range was deleted makes Raft delete it again); a first
// entry past Last()+1 records the indexes in between as a gap, and so does
// a hole inside entries (the segment is split there).
func (a *Archive) Append(entries []*raft.Log) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(entries) > 0 && entries[0].Index <= a.m.Last {
		entries = entries[1:]
	}
	for len(entries) > 0 {
		if entries[0].Index > a.m.Last+1 {
			if err := a.gapLocked(entries[0].Index-1, "not in the log when it was archived"); err != nil {
				return err
			}
		}
		n := 1
		for n < len(entries) && entries[n].Index == entries[n-1].Index+1 {
			n++
		}
		if err := a.writeSegment(entries[:n]); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return a.retain()
}

func (a *Archive) writeSegment(entries []*raft.Log) error {
	first, last := entries[0].Index, entries[len(entries)-1].Index
	data := encodeSegment(entries)
	s := Segment{Name: segmentName(first, last), First: first, Last: last, Bytes: int64(len(data)), SHA256: checksum(data)}
	s.FirstTime, s.LastTime = a.times(entries)
	if err := a.o.Store.Put(s.Name, data); err != nil {
		return err
	}
	next := a.m.clone()
	next.Segments = append(next.Segments, s)
	next.Last = last
	return a.commit(next)
}

// times returns the first and last record times among entries.
func (a *Archive) times(entries []*raft.Log) (first, last int64) {
	at := func(e *raft.Log) (int64, int64, bool) {
		if a.o.RecordTimes != nil {
			return a.o.RecordTimes(e)
		}
		if e.AppendedAt.IsZero() {
			return 0, 0, false
		}
		ms := e.AppendedAt.UnixMilli()
		return ms, ms, true
	}
	for _, e := range entries {
		if f, _, ok := at(e); ok {
			first = f
			break
		}
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if _, l, ok := at(entries[i]); ok {
			last = l
			break
		}
	}
	return first, last
}

// Gap records that the indexes after Last() through through will never be
// archived, and why. A gap at or below Last() changes nothing.
func (a *Archive) Gap(through uint64, reason string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gapLocked(through, reason)
}

func (a *Archive) gapLocked(through uint64, reason string) error {
	if through <= a.m.Last {
		return nil
	}
	g := Gap{From: a.m.Last + 1, Through: through, Reason: reason, At: a.o.Now().UnixMilli()}
	next := a.m.clone()
	next.Gaps = append(next.Gaps, g)
	next.Last = through
	if err := a.commit(next); err != nil {
		return err
	}
	a.log.Warn("archive gap: these entries are not archived", "from_index", g.From, "through_index", g.Through, "reason", reason)
	return nil
}

func (m manifest) clone() manifest {
	m.Segments = append([]Segment(nil), m.Segments...)
	m.Gaps = append([]Gap(nil), m.Gaps...)
	return m
}

// commit stores next as the new manifest, then forgets the old one.
func (a *Archive) commit(next manifest) error {
	old := a.m.Seq
	next.Seq = old + 1
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if err := a.o.Store.Put(manifestName(next.Seq), b); err != nil {
		return err
	}
	a.m = next
	if old > 0 {
		if err := a.o.Store.Delete(manifestName(old)); err != nil {
			// Harmless: Open removes manifests older than the newest.
			a.log.Warn("could not delete an old manifest", "name", manifestName(old), "err", err)
		}
	}
	return nil
}

// retain drops the oldest segments the policy says to, whole: first those
// whose newest record is older than MaxAge, then more while the archive
// holds over MaxBytes.
func (a *Archive) retain() error {
	if a.o.MaxAge <= 0 && a.o.MaxBytes <= 0 {
		return nil
	}
	segs := a.m.Segments
	n := 0
	if a.o.MaxAge > 0 {
		cutoff := a.o.Now().Add(-a.o.MaxAge).UnixMilli()
		for n < len(segs) && segs[n].LastTime < cutoff {
			n++
		}
	}
	byAge := n
	if a.o.MaxBytes > 0 {
		var total int64
		for _, s := range segs[n:] {
			total += s.Bytes
		}
		for n < len(segs) && total > a.o.MaxBytes {
			total -= segs[n].Bytes
			n++
		}
	}
	if n == 0 {
		return nil
	}
	drop := segs[:n]
	next := a.m.clone()
	next.Segments = next.Segments[n:]
	var bytes int64
	for _, s := range drop {
		bytes += s.Bytes
	}
	now := a.o.Now().UnixMilli()
	next.Dropped.Segments += n
	next.Dropped.Bytes += bytes
	next.Dropped.Through = drop[n-1].Last
	next.Dropped.LastAt = now
	if err := a.commit(next); err != nil {
		return err
	}
	a.log.Info("archive retention dropped segments", "segments", n, "from_index", drop[0].First,
		"through_index", drop[n-1].Last, "bytes", bytes, "by_age", byAge, "by_bytes", n-byAge,
		"max_age", a.o.MaxAge, "max_bytes", a.o.MaxBytes)
	for _, s := range drop {
		if err := a.o.Store.Delete(s.Name); err != nil {
			// The manifest no longer names it; Open removes it.
			a.log.Warn("could not delete a dropped segment", "name", s.Name, "err", err)
		}
	}
	return nil
}

// Status is what /v1/status shows of the archive.
type Status struct {
	Segments int    `json:"segments"`
	Bytes    int64  `json:"bytes"`
	First    uint64 `json:"first_index"` // first index held in a segment; 0: none
	Last     uint64 `json:"last_index"`  // last index held in a segment; 0: none
	// Covered is the highest index archived, in a gap or dropped.
	Covered  uint64  `json:"covered_index"`
	Gaps     []Gap   `json:"gaps,omitempty"`
	Dropped  Dropped `json:"dropped"`
	MaxAge   string  `json:"max_age,omitempty"`
	MaxBytes int64   `json:"max_bytes,omitempty"`
}

// Status summarises the archive.
func (a *Archive) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{Segments: len(a.m.Segments), Covered: a.m.Last, Dropped: a.m.Dropped,
		Gaps: append([]Gap(nil), a.m.Gaps...), MaxBytes: a.o.MaxBytes}
	if a.o.MaxAge > 0 {
		st.MaxAge = a.o.MaxAge.String()
	}
	for _, s := range a.m.Segments {
		st.Bytes += s.Bytes
	}
	if len(a.m.Segments) > 0 {
		st.First, st.Last = a.m.Segments[0].First, a.m.Segments[len(a.m.Segments)-1].Last
	}
	return st
}

// Segments returns the manifest's segments, oldest first.
func (a *Archive) Segments() []Segment {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Segment(nil), a.m.Segments...)
}

// ReadableFrom is the lowest index from which every index through Last()
// is held in segments: Last()+1 when the newest indexes covered are a gap
// or were dropped, 1 when nothing was ever archived.
func (a *Archive) ReadableFrom() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	segs := a.m.Segments
	from := a.m.Last + 1
	for i := len(segs) - 1; i >= 0 && segs[i].Last+1 == from; i-- {
		from = segs[i].First
	}
	return from
}

// Read returns the entries of a segment, verified against the manifest's
// checksum and index range; damage is an error wrapping ErrCorrupt.
func (a *Archive) Read(s Segment) ([]*raft.Log, error) {
	b, err := a.o.Store.Get(s.Name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: segment %s (indexes %d..%d) is missing (dropped by retention meanwhile?)", ErrMissing, s.Name, s.First, s.Last)
	}
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != s.Bytes || checksum(b) != s.SHA256 {
		return nil, fmt.Errorf("%w: %s (indexes %d..%d): checksum mismatch", ErrCorrupt, s.Name, s.First, s.Last)
	}
	entries, err := decodeSegment(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	for i, e := range entries {
		if e.Index != s.First+uint64(i) {
			return nil, fmt.Errorf("%w: %s: entry %d has index %d", ErrCorrupt, s.Name, i, e.Index)
		}
	}
	if uint64(len(entries)) != s.Last-s.First+1 {
		return nil, fmt.Errorf("%w: %s: %d entries for indexes %d..%d", ErrCorrupt, s.Name, len(entries), s.First, s.Last)
	}
	return entries, nil
}

// Entries calls fn for every entry in [from, to] in order, reading the
// segments that hold them; an index not held (a gap, dropped by retention,
// past Last) is an error that says why.
func (a *Archive) Entries(from, to uint64, fn func(*raft.Log) error) error {
	a.mu.Lock()
	segs := append([]Segment(nil), a.m.Segments...)
	m := a.m.clone()
	a.mu.Unlock()
	i := sort.Search(len(segs), func(i int) bool { return segs[i].Last >= from })
	for idx := from; idx <= to; {
		if i >= len(segs) || segs[i].First > idx {
			return m.missing(idx)
		}
		entries, err := a.Read(segs[i])
		if err != nil {
			return err
		}
		for _, e := range entries[idx-segs[i].First:] {
			if e.Index > to {
				return nil
			}
			if err := fn(e); err != nil {
				return err
			}
			idx = e.Index + 1
		}
		i++
	}
	return nil
}

// ErrMissing is wrapped by the error for an index the archive does not
// hold.
var ErrMissing = errors.New("log entry not readable")

// missing explains why index is not held.
func (m manifest) missing(index uint64) error {
	for _, g := range m.Gaps {
		if index >= g.From && index <= g.Through {
			return fmt.Errorf("%w: index %d is in an archive gap (%d..%d: %s)", ErrMissing, index, g.From, g.Through, g.Reason)
		}
	}
	if index <= m.Dropped.Through {
		return fmt.Errorf("%w: index %d was dropped by archive retention (dropped through %d)", ErrMissing, index, m.Dropped.Through)
	}
	if index > m.Last {
		return fmt.Errorf("%w: index %d is past the archive (last %d)", ErrMissing, index, m.Last)
	}
	return fmt.Errorf("%w: index %d is not in the archive", ErrMissing, index)
}
