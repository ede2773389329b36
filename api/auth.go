package api

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"regexp"

	"github.com/cairn-dev/cairn/sdk/signing"
	"github.com/labstack/echo/v4"
)

// Who may pass each door (protocol note §2). With no signing key
// configured (cairn dev, or cairn start --insecure) every door is open and
// Authorization is ignored, as dev servers do: the SDK sends garbage there
// in dev mode.
//
//	/e/:key                          a known event key
//	/fn/register, /v1/...            Authorization: Bearer <signing key, hashed or raw>,
//	                                 or the web UI's session cookie (session.go)
//	/v1/internal/...                 another node of the cluster only
//	/v1/cluster/join, /remove        another node, or the signing key
//	/health, /metrics                open (probes and scrapers)

// ctxKeyID is where a request's authenticated signing key id is kept;
// ctxCredential the name of the credential that let it in (see actor).
const (
	ctxKeyID      = "cairn.key_id"
	ctxCredential = "cairn.credential"
)

// Actors. Records a request causes name who made it (their By, "actor" in
// the views), as "<client> (<credential>)", or either part alone:
//
//	client      what the caller says it is in ActorHeader (the CLI sends
//	            "cli", or $CAIRN_ACTOR), else "app" when the SDK sent it
//	            (X-Inngest-SDK: events from inngest.send and step.sendEvent,
//	            syncs)
//	credential  "key:<id>" for the signing key or its fallback (the key's
//	            id: the first 8 bytes of its hash, as an app's Owner), or
//	            "event-key:<first 8 hex of the key's sha256>"; none in dev mode
//
// e.g. "cli (key:3fa2…)", "app (event-key:1c9e02ab)", "app" (dev mode), or
// "anonymous" when nothing is known. The client part is the caller's word,
// the credential part is checked. Records the engine proposes by itself
// (claims, answers, timers, crons) name nobody: their actor is the engine.
const (
	// ActorHeader names the client program or person behind a request.
	ActorHeader    = "X-Cairn-Actor"
	actorApp       = "app"
	actorAnonymous = "anonymous"
)

// validActor is what ActorHeader may hold: short, and without the spaces
// and parentheses that separate the parts of an actor.
var validActor = regexp.MustCompile(`^[A-Za-z0-9._@+:/-]{1,64}$`)

// checkActor refuses a request whose ActorHeader the records could not
// keep as it is, before anything is proposed.
func checkActor(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if v := c.Request().Header.Values(ActorHeader); len(v) > 1 || (len(v) == 1 && !validActor.MatchString(v[0])) {
			return errf(http.StatusBadRequest, "invalid_actor",
				"%s must be one name of 1 to 64 letters, digits or ._@+:/-", ActorHeader)
		}
		return next(c)
	}
}

// actor names who made a request (see Actors above).
func actor(c echo.Context) string {
	h := c.Request().Header
	client := h.Get(ActorHeader)
	if client == "" && h.Get("X-Inngest-SDK") != "" {
		client = actorApp
	}
	cred, _ := c.Get(ctxCredential).(string)
	switch {
	case client != "" && cred != "":
		return client + " (" + cred + ")"
	case client != "":
		return client
	case cred != "":
		return cred
	}
	return actorAnonymous
}

// signingKeyName names a signing key in actors without revealing it.
func signingKeyName(k signing.Key) string { return "key:" + k.ID }

// eventKeyName names an event key in actors without revealing it: a
// short prefix of its hash tells the configured keys apart (cairn start
// logs each key's name; random keys keep the prefix from helping guesses).
func eventKeyName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "event-key:" + hex.EncodeToString(sum[:4])
}

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
				c.Set(ctxCredential, eventKeyName(k))
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
		if c.Request().Header.Get(echo.HeaderAuthorization) == "" {
			// The web UI's fetches: a session cookie (session.go).
			if ok, err := s.checkSession(c); err != nil {
				return err
			} else if ok {
				return next(c)
			}
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
	c.Set(ctxCredential, signingKeyName(k))
	return nil
}

// keyID is the id of the signing key that authenticated the request ("" in
// dev mode): registrations record it as the app's owner.
func keyID(c echo.Context) string {
	id, _ := c.Get(ctxKeyID).(string)
	return id
}
