package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/labstack/echo/v4"
	"github.com/oklog/ulid/v2"
)

// eventView is a stored event as the API shows it: what apps receive, plus
// when Cairn accepted it (the time in its id).
type eventView struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Data       json.RawMessage `json:"data"`
	User       json.RawMessage `json:"user"`
	TS         int64           `json:"ts"`
	V          string          `json:"v,omitempty"`
	ReceivedAt int64           `json:"received_at"`
	// Actor is who sent it (api/auth.go), ReplayedFrom the event it sends
	// again; both absent when the log does not say (events accepted before
	// format 3, events the engine emits).
	Actor        string `json:"actor,omitempty"`
	ReplayedFrom string `json:"replayed_from,omitempty"`
}

// viewEvent shows a stored event with its origin.
func (s *Server) viewEvent(e fsm.StoredEvent) (eventView, error) {
	var v eventView
	if err := json.Unmarshal(e.JSON, &v); err != nil {
		return v, err
	}
	v.ID = e.ID
	if u, err := ulid.ParseStrict(e.ID); err == nil {
		v.ReceivedAt = int64(u.Time())
	}
	o, err := s.fsm.EventOrigin(e.ID)
	if err != nil {
		return v, err
	}
	v.Actor, v.ReplayedFrom = o.By, o.ReplayedFrom
	return v, nil
}

// Listing bounds.
const (
	defaultEventLimit = 50
	maxEventLimit     = 1000
)

// listEvents: GET /v1/events?name=&from=&to=&cursor=&limit= (newest first).
func (s *Server) listEvents(c echo.Context) error {
	q := fsm.EventQuery{Name: c.QueryParam("name"), Cursor: c.QueryParam("cursor"), Limit: defaultEventLimit}
	var err error
	if q.From, err = timeParam(c, "from"); err != nil {
		return err
	}
	if q.To, err = timeParam(c, "to"); err != nil {
		return err
	}
	if l := c.QueryParam("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxEventLimit {
			return errf(http.StatusBadRequest, "bad_request", "limit must be between 1 and %d", maxEventLimit)
		}
		q.Limit = n
	}
	if q.Cursor != "" {
		if _, err := ulid.ParseStrict(q.Cursor); err != nil {
			return errf(http.StatusBadRequest, "bad_request", "cursor %q is not an event id", q.Cursor)
		}
	}
	events, next, err := s.fsm.Events(q)
	if err != nil {
		return err
	}
	out := make([]eventView, 0, len(events))
	for _, e := range events {
		v, err := s.viewEvent(e)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out, "cursor": next})
}

// timeParam reads a time given as RFC 3339 or unix milliseconds (0 if absent).
func timeParam(c echo.Context, name string) (int64, error) {
	v := c.QueryParam(name)
	if v == "" {
		return 0, nil
	}
	return parseTime(name, v)
}

// storedEventByID reads one stored event, or a 404.
func (s *Server) storedEventByID(id string) (eventView, error) {
	raw, err := s.fsm.Event(id)
	if err != nil {
		return eventView{}, err
	}
	if raw == nil {
		return eventView{}, errf(http.StatusNotFound, "not_found", "no event %q", id)
	}
	return s.viewEvent(fsm.StoredEvent{ID: id, JSON: raw})
}

// getEvent: GET /v1/events/:id.
func (s *Server) getEvent(c echo.Context) error {
	v, err := s.storedEventByID(c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": v})
}

// replayEvent: POST /v1/events/:id/replay sends a stored event again, as a
// new event (new id, time now) with the same name, data and user; the runs
// it starts are new runs.
func (s *Server) replayEvent(c echo.Context) error {
	old, err := s.storedEventByID(c.Param("id"))
	if err != nil {
		return err
	}
	raw, err := json.Marshal(map[string]any{"name": old.Name, "data": old.Data, "user": old.User})
	if err != nil {
		return err
	}
	rec, err := buildEvent(raw, 0, time.Now(), 0, nil)
	if err != nil {
		return err
	}
	rec.Lease, rec.By, rec.ReplayedFrom = s.exec.LeaseNext(), actor(c), old.ID
	res, err := s.propose(c, rec)
	if err != nil {
		return err
	}
	s.exec.Adopt(res[0].Claimed)
	s.log.Info("event replayed", "event", old.ID, "as", res[0].ID, "by", actor(c))
	runs := res[0].Runs
	if runs == nil {
		runs = []string{}
	}
	return c.JSON(http.StatusOK, map[string]any{"data": map[string]any{"id": res[0].ID, "replayed_from": old.ID, "runs": runs}})
}
