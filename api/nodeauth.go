package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/cairn-dev/cairn/internal/clusterauth"
	"github.com/labstack/echo/v4"
)

// Some routes are for the nodes of the cluster: forwarded answers
// (/v1/internal/answers), the calls a node has in hand
// (/v1/internal/calls) and membership (/v1/cluster/join, /remove). A node
// proves it is one with the cluster secret (package clusterauth) and, under
// TLS, with a client certificate from the cluster CA. Without a secret
// configured (dev mode) these routes are open, as they always were.

// errNoClientCert: under TLS a node's request arrives with its certificate.
var errNoClientCert = errors.New("no client certificate from the cluster CA")

// nodeProof says why the request does not come from a node of this cluster
// (nil: it does). A request that a follower proxies here keeps its sender's
// proof, or lack of one.
func (s *Server) nodeProof(c echo.Context) error {
	if s.cfg.ClusterSecret == "" {
		return clusterauth.ErrMissing // nothing to prove knowledge of
	}
	r := c.Request()
	if s.cfg.TLS != nil && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
		return errNoClientCert
	}
	return clusterauth.Verify(r, s.cfg.ClusterSecret, time.Now())
}

// isNode reports whether the request comes from a node of this cluster,
// for checks that let nodes through along with others (admins).
func (s *Server) isNode(c echo.Context) bool { return s.nodeProof(c) == nil }

// nodeRoutes are the routes only nodes may call.
var nodeRoutes = map[string]bool{pathJoin: true, pathRemove: true, pathAnswers: true, pathCalls: true}

// nodesOnly is the middleware that keeps node routes to nodes (to anyone
// when no cluster secret is configured). It runs before forward, on the
// node a caller reaches first: a follower must not proxy a caller that is
// not a node, since the leader would then see the follower's certificate.
func (s *Server) nodesOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !nodeRoutes[c.Path()] || s.cfg.ClusterSecret == "" {
			return next(c)
		}
		err := s.nodeProof(c)
		if err == nil {
			return next(c)
		}
		// Operators manage membership with the signing key.
		if c.Path() != pathAnswers && s.secured() {
			if _, ok := s.cfg.Keys.CheckBearer(c.Request().Header.Get(echo.HeaderAuthorization)); ok {
				return next(c)
			}
		}
		s.log.Warn("refused a request for nodes only", "path", c.Path(), "from", c.Request().RemoteAddr, "err", err)
		return errf(http.StatusUnauthorized, "unauthorized",
			"%s is for nodes of this cluster: %v (nodes send %s, made with the cluster secret)", c.Path(), err, clusterauth.Header)
	}
}
