package pointintime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/hashicorp/raft"
)

// IndexAt returns the last log index whose records' times are all at or
// before t: the index before the first command entry with a record after
// t (the last index, if none is). Entries without records (configuration
// changes, Raft's no-ops) change no run, so the state is the same on
// either side of them.
//
// It searches by halving, reading O(log n) entries, which assumes record
// times grow along the log. They do within a leader's term (one clock);
// a new leader whose clock lags the old one's can break that for the
// entries around its election, where the answer is then one of the
// indexes near the change rather than the last one.
func (s *States) IndexAt(ctx context.Context, t time.Time) (uint64, error) {
	ms := t.UnixMilli()
	first, last, err := s.bounds()
	if err != nil {
		return 0, err
	}
	switch {
	case last == 0:
		return 0, nil // nothing was ever written
	case first > last:
		return 0, refuse(ErrCompacted, "this node holds no log entries to search by time (its state is at index %d)", last)
	}
	// after(i): the first command at or after i has a record after t, or
	// there is no command from i on. False at i, true at i+1 means i is
	// the answer; after(last+1) holds.
	after := func(i uint64) (bool, error) {
		found, later := false, false
		err := s.cfg.Log.Entries(i, last, func(l *raft.Log) error {
			if l.Type != raft.LogCommand {
				return nil
			}
			at, err := entryTime(l)
			if err != nil {
				return err
			}
			found, later = true, at > ms
			return errStop
		})
		if err != nil && !errors.Is(err, errStop) {
			return false, err
		}
		return !found || later, nil
	}
	lo, hi := first, last+1
	for lo < hi {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		mid := lo + (hi-lo)/2
		ok, err := after(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if lo == first && first > 1 {
		return 0, refuse(ErrCompacted, "%s is before the oldest entry this node still holds (index %d)",
			t.UTC().Format(time.RFC3339Nano), first)
	}
	return lo - 1, nil
}

var errStop = errors.New("stop")

// entryTime is the latest time among an entry's records.
func entryTime(l *raft.Log) (int64, error) {
	recs, err := fsm.DecodeEntry(l.Data)
	if err != nil {
		return 0, fmt.Errorf("pointintime: entry %d: %w", l.Index, err)
	}
	var at int64
	for _, r := range recs {
		at = max(at, r.Time())
	}
	return at, nil
}
