package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/labstack/echo/v4"
	"github.com/oklog/ulid/v2"
)

// incomingEvent is an event as clients send it (protocol §10).
type incomingEvent struct {
	Name *string         `json:"name"`
	Data json.RawMessage `json:"data"`
	ID   json.RawMessage `json:"id"`
	TS   json.RawMessage `json:"ts"`
	V    string          `json:"v"`
	User json.RawMessage `json:"user"`
}

// storedEvent is the JSON an app receives; field order is fixed.
type storedEvent struct {
	Name string          `json:"name"`
	Data json.RawMessage `json:"data"`
	ID   string          `json:"id"`
	TS   int64           `json:"ts"`
	V    string          `json:"v,omitempty"`
	User json.RawMessage `json:"user"`
}

// postEvents accepts one event or an array of them. The answer
// {"ids": [...], "status": 200} is sent only once all are committed.
func (s *Server) postEvents(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	evs, err := parseEvents(body, time.Now(), c.Request().Header.Get("X-Inngest-Event-Id-Seed"), s.cfg.MaxEventBytes)
	if err != nil {
		return err
	}
	lease, by := s.exec.LeaseNext(), actor(c)
	recs := make([]fsm.Record, len(evs))
	for i, ev := range evs {
		ev.Lease, ev.By = lease, by
		recs[i] = ev
	}
	results, err := s.propose(c, recs...)
	if err != nil {
		return err
	}
	ids := make([]string, len(results))
	for i, r := range results {
		ids[i] = r.ID
		s.exec.Adopt(r.Claimed)
	}
	return c.JSON(http.StatusOK, map[string]any{"ids": ids, "status": 200})
}

// parseEvents validates a body of events and turns it into records. It
// reads nothing but its arguments (ids are random without a seed header),
// so it is what the event-body fuzz target drives.
func parseEvents(body []byte, now time.Time, seedHeader string, maxEventBytes int) ([]*fsm.EventAccepted, error) {
	raws, err := splitEvents(body)
	if err != nil {
		return nil, err
	}
	seedMs, seed := parseSeed(seedHeader)
	recs := make([]*fsm.EventAccepted, 0, len(raws))
	for i, raw := range raws {
		if len(raw) > maxEventBytes {
			return nil, errf(http.StatusRequestEntityTooLarge, "payload_too_large",
				"event %d is %d bytes; the limit per event is %d", i, len(raw), maxEventBytes)
		}
		rec, err := buildEvent(raw, i, now, seedMs, seed)
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// splitEvents parses the body as a JSON object or array of objects.
func splitEvents(body []byte) ([]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, errf(http.StatusBadRequest, "invalid_json", "empty body: expected an event object or an array of events")
	}
	if !json.Valid(body) {
		return nil, errf(http.StatusBadRequest, "invalid_json", "body is not valid JSON")
	}
	switch body[0] {
	case '{':
		return []json.RawMessage{body}, nil
	case '[':
		var list []json.RawMessage
		if err := json.Unmarshal(body, &list); err != nil {
			return nil, errf(http.StatusBadRequest, "invalid_json", "%v", err)
		}
		if len(list) == 0 {
			return nil, errf(http.StatusBadRequest, "invalid_event", "empty array: no events to send")
		}
		return list, nil
	}
	return nil, errf(http.StatusBadRequest, "invalid_event", "expected an event object or an array of events")
}

// buildEvent validates one event and turns it into a record. The server id
// is derived from the SDK's seed header when present, so a retried send
// gets the same ids and is deduplicated.
func buildEvent(raw json.RawMessage, i int, now time.Time, seedMs uint64, seed []byte) (*fsm.EventAccepted, error) {
	var in incomingEvent
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&in); err != nil || !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		return nil, errf(http.StatusBadRequest, "invalid_event", "event %d: expected a JSON object with a name", i)
	}
	if in.Name == nil || strings.TrimSpace(*in.Name) == "" {
		return nil, errf(http.StatusBadRequest, "invalid_event", "event %d: \"name\" is required", i)
	}
	if at := invalidUTF8At(raw); at >= 0 {
		where := "event " + strconv.Itoa(i)
		for _, f := range []struct {
			name string
			raw  []byte
		}{{"data", in.Data}, {"user", in.User}, {"id", in.ID}} {
			if invalidUTF8At(f.raw) >= 0 {
				where += ` "` + f.name + `"`
				break
			}
		}
		return nil, errf(http.StatusBadRequest, "invalid_event", "%s is not valid UTF-8 (byte %d of the event)", where, at)
	}
	if msg := checkName(*in.Name, maxEventNameBytes); msg != "" {
		return nil, errf(http.StatusBadRequest, "invalid_event", "event %d: \"name\" %s", i, msg)
	}
	out := storedEvent{Name: *in.Name, Data: in.Data, V: in.V, User: in.User}
	if d := bytes.TrimSpace(in.Data); len(d) == 0 || string(d) == "null" {
		out.Data = json.RawMessage("{}")
	} else if d[0] != '{' {
		return nil, errf(http.StatusBadRequest, "invalid_event", "event %d (%s): \"data\" must be an object", i, out.Name)
	}
	if u := bytes.TrimSpace(in.User); len(u) == 0 || string(u) == "null" {
		out.User = json.RawMessage("{}")
	} else if u[0] != '{' {
		return nil, errf(http.StatusBadRequest, "invalid_event", "event %d (%s): \"user\" must be an object", i, out.Name)
	}
	var idemKey string
	if len(in.ID) > 0 && string(in.ID) != "null" {
		if err := json.Unmarshal(in.ID, &idemKey); err != nil {
			return nil, errf(http.StatusBadRequest, "invalid_event", "event %d (%s): \"id\" must be a string", i, out.Name)
		}
	}
	ts, msg := checkTS(in.TS, now.UnixMilli())
	if msg != "" {
		return nil, errf(http.StatusBadRequest, "invalid_event", "event %d (%s): \"ts\" %s", i, out.Name, msg)
	}
	out.TS = ts
	if out.TS <= 0 {
		out.TS = now.UnixMilli()
	}
	out.ID = eventID(i, seedMs, seed)
	js, err := json.Marshal(out)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "invalid_event", "event %d: %v", i, err)
	}
	return &fsm.EventAccepted{At: now.UnixMilli(), ID: out.ID, Name: out.Name, IdemKey: idemKey, JSON: js}, nil
}

// parseSeed reads "x-inngest-event-id-seed: <ms>,<base64 bytes>".
func parseSeed(h string) (uint64, []byte) {
	msStr, b64, ok := strings.Cut(h, ",")
	if !ok {
		return 0, nil
	}
	ms, err := strconv.ParseUint(strings.TrimSpace(msStr), 10, 64)
	if err != nil || ms > ulid.MaxTime() {
		return 0, nil
	}
	entropy, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil || len(entropy) == 0 {
		return 0, nil
	}
	return ms, entropy
}

func eventID(i int, seedMs uint64, seed []byte) string {
	if seed == nil {
		return ulid.Make().String()
	}
	h := sha256.Sum256(append(append([]byte(nil), seed...), strconv.Itoa(i)...))
	id, _ := ulid.New(seedMs, bytes.NewReader(h[:10]))
	return id.String()
}
