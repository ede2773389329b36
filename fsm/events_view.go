package fsm

import (
	"encoding/json"
	"errors"

	"github.com/oklog/ulid/v2"
)

// EventQuery selects stored events for a listing.
type EventQuery struct {
	Name     string // only events of this name ("" any)
	From, To int64  // arrival time bounds, unix ms, inclusive (0: open)
	Cursor   string // continue after this event id ("" from the newest)
	Limit    int
}

// StoredEvent is an event as the projection keeps it: its id and the JSON
// apps receive.
type StoredEvent struct {
	ID   string
	JSON []byte
}

// maxEventsScanned bounds how many stored events one listing reads past:
// a rare name must not make one request read the whole history.
const maxEventsScanned = 10000

// Events lists stored events newest first. Event ids are ULIDs stamped with
// their arrival time, so key order is arrival order and the time bounds are
// key bounds. It returns the cursor to continue from ("" at the end).
func (f *FSM) Events(q EventQuery) ([]StoredEvent, string, error) {
	p := []byte("e/")
	lower, upper := p, prefixEnd(p)
	if q.From > 0 {
		lower = keyEvent(timeULID(q.From))
	}
	if q.To > 0 {
		upper = keyEvent(timeULID(q.To + 1))
	}
	if q.Cursor != "" {
		if c := keyEvent(q.Cursor); string(c) < string(upper) {
			upper = c
		}
	}
	if string(upper) <= string(lower) || q.Limit <= 0 {
		return nil, "", nil
	}
	var out []StoredEvent
	var derr error
	scanned, last := 0, ""
	err := f.scan(lower, upper, true, func(k, v []byte) bool {
		id := string(k[len(p):])
		scanned, last = scanned+1, id
		if q.Name != "" {
			var head struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(v, &head); err != nil {
				derr = errors.New("fsm: undecodable event at " + string(k))
				return false
			}
			if head.Name != q.Name {
				return scanned < maxEventsScanned
			}
		}
		out = append(out, StoredEvent{ID: id, JSON: append([]byte(nil), v...)})
		return len(out) < q.Limit && scanned < maxEventsScanned
	})
	if err = errors.Join(err, derr); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) == q.Limit || scanned >= maxEventsScanned {
		next = last
	}
	return out, next, nil
}

// timeULID is the smallest ULID of a millisecond: a key bound for times.
func timeULID(ms int64) string {
	var u ulid.ULID
	if err := u.SetTime(uint64(ms)); err != nil {
		return ""
	}
	return u.String()
}
