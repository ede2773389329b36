package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/cairn-dev/cairn/archive"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/raftnode"
	"github.com/hashicorp/raft"
	"github.com/labstack/echo/v4"
)

// Log page bounds: limit counts Raft entries (log indexes), so that a page
// ends on an index and next_index resumes exactly after it.
const (
	defaultLogLimit = 100
	maxLogLimit     = 1000
)

// LogRecord is one record of the log as GET /v1/log shows it. One Raft
// entry holds many records (group commit): position is the record's place
// in its entry, from 0.
type LogRecord struct {
	Index    uint64          `json:"index"`
	Position int             `json:"position"`
	Term     uint64          `json:"term"`
	Time     int64           `json:"time"` // the record's own time (unix ms)
	Kind     string          `json:"kind"`
	Body     json.RawMessage `json:"body"` // the record, JSON payloads inline (recordBody)
}

// listLog: GET /v1/log?from_index=&limit= lists the committed records of
// log entries from_index.. (at most limit entries), from the archive and
// then the live log, in log order. Raft's own entries (configuration,
// no-op, barrier) hold no records and are skipped; next_index still moves
// past them. from_index defaults to the first readable index; one below
// it is 410 (compacted without archive, dropped by retention, or a gap).
func (s *Server) listLog(c echo.Context) error {
	src := s.node.LogSource()
	first, err := src.FirstIndex()
	if err != nil {
		return err
	}
	last, err := src.LastIndex()
	if err != nil {
		return err
	}
	from, limit := first, uint64(defaultLogLimit)
	if v := c.QueryParam("from_index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < 1 {
			return errf(http.StatusBadRequest, "bad_request", "from_index=%q: want a log index, 1 or more", v)
		}
		from = n
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLogLimit {
			return errf(http.StatusBadRequest, "bad_request", "limit=%q: want between 1 and %d", v, maxLogLimit)
		}
		limit = uint64(n)
	}
	if from < first {
		return errf(http.StatusGone, "log_gone", "log index %d is no longer readable; the log starts at %d", from, first)
	}
	out := []LogRecord{}
	if from > last {
		return c.JSON(http.StatusOK, map[string]any{"data": out, "next_index": from})
	}
	to := min(last, from+limit-1)
	err = src.Entries(from, to, func(l *raft.Log) error {
		if l.Type != raft.LogCommand {
			return nil
		}
		recs, err := fsm.DecodeEntry(l.Data)
		if err != nil {
			return fmt.Errorf("log entry %d: %w", l.Index, err)
		}
		for i, r := range recs {
			out = append(out, LogRecord{Index: l.Index, Position: i, Term: l.Term, Time: r.Time(), Kind: r.Kind().String(), Body: recordBody(r)})
		}
		return nil
	})
	switch {
	case errors.Is(err, archive.ErrCorrupt):
		s.log.Error("archived log is corrupt", "from_index", from, "to_index", to, "err", err)
		return errf(http.StatusInternalServerError, "archive_corrupt", "%v", err)
	case errors.Is(err, raftnode.ErrLogMissing):
		return errf(http.StatusGone, "log_gone", "%v", err)
	case err != nil:
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out, "next_index": to + 1})
}
