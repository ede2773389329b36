package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/raftnode"
	"github.com/labstack/echo/v4"
)

// apiError is the one error shape of every endpoint:
//
//	{"error": "what is wrong", "code": "invalid_json", "status": 400}
//
// status is repeated in the body because the Inngest SDK reads it from there
// (it ignores the HTTP status of /fn/register).
type apiError struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Msg    string `json:"error"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Msg }

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// errorHandler renders every error, including echo's own (404 route,
// 405 method), in the one shape.
func errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		ae = &apiError{Status: he.Code, Code: codeFor(he.Code), Msg: fmt.Sprint(he.Message)}
	case errors.Is(err, raftnode.ErrNotLeader):
		ae = errf(http.StatusServiceUnavailable, "not_leader", "this node is not the leader; nothing was written")
	case errors.Is(err, raftnode.ErrOutcomeUnknown):
		ae = errf(http.StatusServiceUnavailable, "outcome_unknown",
			"the write may or may not have been committed; retry with the same event id: %v", err)
	case errors.Is(err, fsm.ErrFormat):
		ae = errf(http.StatusConflict, "cluster_upgrading", "%v; nothing was written: upgrade every node first", err)
	case errors.Is(err, raftnode.ErrShutdown):
		ae = errf(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down; nothing was written")
	default:
		ae = errf(http.StatusInternalServerError, "internal", "%v", err)
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(ae.Status)
		return
	}
	c.JSON(ae.Status, ae)
}

func codeFor(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "payload_too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	}
	if status >= 500 {
		return "internal"
	}
	return "bad_request"
}
