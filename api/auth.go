package api

import (
	"net/http"

	"github.com/cairn-dev/cairn/internal/signing"
	"github.com/labstack/echo/v4"
)

// Who may pass each door (protocol note §2). With no signing key
// configured (cairn dev, or cairn start --insecure) every door is open and
// Authorization is ignored, as dev servers do: the SDK sends garbage there
// in dev mode.
//
//	/e/:key                          a known event key
//	/fn/register, /v1/...            Authorization: Bearer <signing key, hashed or raw>
//	/v1/internal/...                 another node of the cluster only
//	/v1/cluster/join, /remove        another node, or the signing key
//	/health, /metrics                open (probes and scrapers)

// ctxKeyID is where a request's authenticated signing key id is kept.
const ctxKeyID = "cairn.key_id"

// secured reports whether this node checks credentials at all.
func (s *Server) secured() bool { return s.cfg.Keys.Enabled() }

// needEventKey guards the event API: the key is the last path segment.
func (s *Server) needEventKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.secured() {
			return next(c)
		}
		key := c.Param("key")
		for _, k := range s.cfg.EventKeys {
			if signing.EqualSecret(key, k) {
				return next(c)
			}
		}
		return errf(http.StatusUnauthorized, "unauthorized", "unknown event key: send events to /e/<event key> with a key given to cairn start --event-key")
	}
}

// needSigningKey guards registration and Cairn's own API.
func (s *Server) needSigningKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.secured() {
			return next(c)
		}
		if err := s.checkBearer(c); err != nil {
			return err
		}
		return next(c)
	}
}

// needNode guards routes only other nodes of the cluster may call.
func (s *Server) needNode(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.secured() || s.isNode(c) {
			return next(c)
		}
		return errf(http.StatusUnauthorized, "unauthorized", "this route is for the nodes of the cluster: it needs the cluster secret")
	}
}

// needNodeOrSigningKey guards cluster membership: nodes join by
// themselves, operators use the signing key.
func (s *Server) needNodeOrSigningKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.secured() || s.isNode(c) {
			return next(c)
		}
		if err := s.checkBearer(c); err != nil {
			return err
		}
		return next(c)
	}
}

func (s *Server) checkBearer(c echo.Context) error {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	if h == "" {
		return errf(http.StatusUnauthorized, "unauthorized", "missing \"Authorization: Bearer <signing key>\"")
	}
	k, ok := s.cfg.Keys.CheckBearer(h)
	if !ok {
		return errf(http.StatusUnauthorized, "unauthorized", "the Bearer token is neither the signing key nor its fallback")
	}
	c.Set(ctxKeyID, k.ID)
	return nil
}

// keyID is the id of the signing key that authenticated the request ("" in
// dev mode): registrations record it as the app's owner.
func keyID(c echo.Context) string {
	id, _ := c.Get(ctxKeyID).(string)
	return id
}
