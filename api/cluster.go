package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/raftnode"
	"github.com/labstack/echo/v4"
)

// Any node serves clients. A request that needs the leader (every write,
// and reads unless ?consistency=local) is proxied to it, or answered with
// a 307 to it when the client asks (?redirect=true or X-Cairn-Redirect).
// The leader's HTTP address comes from the NodeSeen record it proposes
// when it takes office.

const forwardedHeader = "X-Cairn-Forwarded-By"

// localOnly paths describe this node and are never forwarded.
func localOnly(path string) bool {
	switch path {
	case "/health", "/metrics", "/v1/status", "/v1/cluster", pathCalls:
		return true
	}
	return false
}

// forward is the middleware that sends leader-bound requests to the leader.
func (s *Server) forward(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if s.node.IsLeader() || localOnly(r.URL.Path) {
			return next(c)
		}
		if r.Method == http.MethodGet && r.URL.Query().Get("consistency") == "local" {
			return next(c) // the client accepts this node's possibly stale projection
		}
		if r.Header.Get(forwardedHeader) != "" {
			return errf(http.StatusServiceUnavailable, "not_leader", "forwarded to a node that is not the leader (leadership is changing); retry")
		}
		addr, err := s.leaderHTTP()
		if err != nil {
			return err
		}
		target := &url.URL{Scheme: s.peerScheme(), Host: addr}
		if r.URL.Query().Get("redirect") == "true" || r.Header.Get("X-Cairn-Redirect") != "" {
			loc := *r.URL
			loc.Scheme, loc.Host = target.Scheme, target.Host
			return c.Redirect(http.StatusTemporaryRedirect, loc.String())
		}
		proxy := httputil.NewSingleHostReverseProxy(target)
		proxy.Transport = s.toLeader
		proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(errf(http.StatusServiceUnavailable, "outcome_unknown",
				"forwarding to the leader failed (%v): the write may or may not have happened; retry with the same event id", err))
		}
		r.Header.Set(forwardedHeader, s.node.ID())
		proxy.ServeHTTP(c.Response(), r)
		return nil
	}
}

// leaderHTTP is the leader's HTTP address, or a 503 saying why there is none.
func (s *Server) leaderHTTP() (string, error) {
	_, leaderID := s.node.Leader()
	if leaderID == "" {
		return "", errf(http.StatusServiceUnavailable, "no_leader", "the cluster has no leader right now; nothing was written; retry")
	}
	info, err := s.fsm.Node(leaderID)
	if err != nil {
		return "", err
	}
	if info == nil || info.HTTPAddr == "" {
		return "", errf(http.StatusServiceUnavailable, "no_leader", "the leader's HTTP address is not known yet; retry")
	}
	return info.HTTPAddr, nil
}

// clusterView describes the cluster as this node sees it.
type clusterView struct {
	Leader   string       `json:"leader_id"`
	Self     any          `json:"self"`
	Members  []memberView `json:"members"`
	Applied  uint64       `json:"applied_index"`
	Digest   string       `json:"log_digest"`
	StateSum string       `json:"state_digest,omitempty"`
}

type memberView struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr,omitempty"`
	Voter    bool   `json:"voter"`
	Leader   bool   `json:"leader"`
}

func (s *Server) clusterStatus(c echo.Context) error {
	members, err := s.node.Members()
	if err != nil {
		return err
	}
	_, leader := s.node.Leader()
	applied, chain := s.fsm.Applied()
	out := clusterView{Leader: leader, Self: s.node.Stats(), Applied: applied, Digest: hex16(chain)}
	for _, m := range members {
		mv := memberView{ID: m.ID, RaftAddr: m.RaftAddr, Voter: m.Voter, Leader: m.ID == leader}
		if info, _ := s.fsm.Node(m.ID); info != nil {
			mv.HTTPAddr = info.HTTPAddr
		}
		out.Members = append(out.Members, mv)
	}
	if c.QueryParam("digest") == "true" {
		if out.StateSum, err = s.fsm.StateDigest(); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, out)
}

// JoinRequest is what a node sends to join: its id and the addresses its
// peers reach it at.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// Format is the record format the member reads (fsm.FormatVersion;
	// absent: 1, a release before formats were recorded).
	Format int `json:"format,omitempty"`
}

// clusterJoin adds a voter. It runs on the leader (followers forward it),
// which first dials the new member's Raft address: a join naming an address
// that does not answer (or fails the TLS handshake) changes nothing.
func (s *Server) clusterJoin(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	var in JoinRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return errf(http.StatusBadRequest, "invalid_json", "join body: %v", err)
	}
	if strings.TrimSpace(in.ID) == "" || in.RaftAddr == "" || in.HTTPAddr == "" {
		return errf(http.StatusBadRequest, "invalid_member", "\"id\", \"raft_addr\" and \"http_addr\" are required")
	}
	// A member already in the configuration at that address (a restarted
	// follower announcing its release) needs no configuration change, and
	// one recorded as it is needs no record either.
	member := s.isMember(in.ID, in.RaftAddr)
	if have, _ := s.fsm.Node(in.ID); member && have != nil && have.RaftAddr == in.RaftAddr &&
		have.HTTPAddr == in.HTTPAddr && have.Format == in.Format {
		return s.clusterStatus(c)
	}
	if !member {
		err = s.node.AddVoter(in.ID, in.RaftAddr)
	}
	if errors.Is(err, raftnode.ErrUnreachable) {
		return errf(http.StatusBadRequest, "member_unreachable",
			"the leader cannot reach %q at raft_addr %s (%v); nothing was changed", in.ID, in.RaftAddr, err)
	}
	if err != nil {
		return err
	}
	if _, err := s.propose(c, &fsm.NodeSeen{At: time.Now().UnixMilli(), ID: in.ID, RaftAddr: in.RaftAddr,
		HTTPAddr: in.HTTPAddr, Format: in.Format}); err != nil {
		return err
	}
	s.log.Info("member joined", "id", in.ID, "raft", in.RaftAddr, "http", in.HTTPAddr)
	return s.clusterStatus(c)
}

// isMember reports whether id is a voter at raftAddr already.
func (s *Server) isMember(id, raftAddr string) bool {
	members, err := s.node.Members()
	if err != nil {
		return false
	}
	for _, m := range members {
		if m.ID == id && m.RaftAddr == raftAddr && m.Voter {
			return true
		}
	}
	return false
}

// Join asks the node at addr (any member: it forwards to the leader) to add
// this node, once, as a node of the cluster (with a proof of the secret).
func (s *Server) Join(ctx context.Context, addr string, me JoinRequest) error {
	body, err := json.Marshal(me)
	if err != nil {
		return err
	}
	resp, err := s.toPeer(ctx, addr, pathJoin, "application/json", body, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// clusterRemove removes a member: {"id"}.
func (s *Server) clusterRemove(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	var in struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.ID == "" {
		return errf(http.StatusBadRequest, "invalid_member", "body must be {\"id\": \"...\"}")
	}
	members, err := s.node.Members()
	if err != nil {
		return err
	}
	found := false
	for _, m := range members {
		found = found || m.ID == in.ID
	}
	if !found {
		return errf(http.StatusNotFound, "member_not_found", "no member with id %q", in.ID)
	}
	if err := s.node.RemoveServer(in.ID); err != nil {
		return err
	}
	s.log.Info("member removed", "id", in.ID)
	return s.clusterStatus(c)
}
