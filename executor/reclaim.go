package executor

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/fsm"
)

// Claims left behind by other processes.
//
// A claim names the process that sends the call (node and boot) and holds
// the call for a lease (CallTimeout + 10 s). A leader killed mid-call
// leaves its claims behind; waiting out their leases would stall its runs
// for the whole call timeout. So a new leader asks every node that holds
// claims what it still has in hand (Config.Probe: GET /v1/internal/calls,
// answered by Held), and takes a call over at once (CallClaimed.Revoke)
// when its claimant is gone:
//
//   - the node does not answer (killed, paused, cut off): at once;
//   - the node answers from another boot (it restarted): at once;
//   - the node answers from the claiming boot but no longer has the call
//     in hand (an answer it could not record), or follows another leader
//     (it could not forward the answer here): when probeStrikes probes in
//     a row say so, since a claim committed a moment ago may not have
//     reached its claimant yet.
//
// A claimant that answers, follows this leader and has the call in hand
// keeps it: it forwards the answer when it comes (a leader deposed by a
// leadership transfer or a short blip). The claims to look at are read
// once per term, after the barrier: nobody else claims while this node
// leads, so the set only shrinks. App calls are at least once; the claim's
// generation makes each answer count at most once: the revoked claimant's
// answer, if it ever arrives, is stale.
const (
	probeEvery   = 250 * time.Millisecond
	probeTimeout = 300 * time.Millisecond
	probeStrikes = 2
)

// Held is what a node's executor has in hand: the process (Boot) and the
// calls it is sending, or holds claimed in its buffer.
type Held struct {
	Node string `json:"node"`
	Boot string `json:"boot"`
	// Leader is the leader the node follows (its answers go there); the
	// API fills it in.
	Leader string      `json:"leader,omitempty"`
	Calls  [][2]string `json:"calls"` // run id, call id

	set map[[2]string]bool // Calls, indexed on first use by has
}

// has reports whether h lists the call. A leader may ask it of thousands
// of claims every probe, so the list is indexed once.
func (h *Held) has(run, call string) bool {
	if h.set == nil {
		h.set = make(map[[2]string]bool, len(h.Calls))
		for _, c := range h.Calls {
			h.set[c] = true
		}
	}
	return h.set[[2]string{run, call}]
}

// Held returns the calls this executor has in hand, for a leader that
// finds them claimed by this node (see reclaimLoop).
func (e *Executor) Held() Held {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := Held{Node: e.cfg.NodeID, Boot: e.boot, Calls: make([][2]string, 0, len(e.inflight)+len(e.fair.queued))}
	add := func(k string) {
		run, call, _ := strings.Cut(k, "\x00")
		h.Calls = append(h.Calls, [2]string{run, call})
	}
	for k := range e.inflight {
		add(k)
	}
	for k := range e.fair.queued {
		if _, ok := e.inflight[k]; !ok {
			add(k)
		}
	}
	return h
}

// reclaimLoop takes over the calls claimed by other processes that are
// gone (see above), until none of those claims is left.
func (e *Executor) reclaimLoop(ctx context.Context) {
	if e.cfg.Probe == nil {
		return
	}
	if e.cfg.Revocable != nil && !e.cfg.Revocable() {
		e.log.Info("a member runs an older release: calls claimed elsewhere are re-sent when their lease ends")
		return
	}
	pending, err := e.fsm.Claims(func(c *fsm.Call) bool { return c.Node != e.cfg.NodeID })
	if err != nil {
		e.log.Error("reading the calls claimed by other nodes", "err", err)
		return
	}
	strikes := map[string]int{}
	for len(pending) > 0 {
		if pending = e.reclaim(ctx, pending, strikes); len(pending) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(probeEvery):
		}
	}
}

// reclaim probes the claimants of pending (claims of other processes as
// they were read), buffers the calls to take over, and returns the claims
// still to watch.
func (e *Executor) reclaim(ctx context.Context, pending []fsm.Call, strikes map[string]int) []fsm.Call {
	now := time.Now().UnixMilli()
	var live []fsm.Call
	for _, p := range pending {
		c, err := e.fsm.Call(p.RunID, p.ID)
		if err == nil && (c == nil || !c.Claimed || c.Gen != p.Gen || c.Node != p.Node || c.Boot != p.Boot || c.Due <= now) {
			// Answered, taken over, or its lease ended (the scan of
			// expired claims has it).
			delete(strikes, callKey(p.RunID, p.ID))
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 || ctx.Err() != nil {
		return live
	}
	type probe struct {
		held Held
		err  error
	}
	probes := map[string]*probe{}
	for _, c := range live {
		if probes[c.Node] == nil {
			probes[c.Node] = &probe{}
		}
	}
	var wg sync.WaitGroup
	for node, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			p.held, p.err = e.cfg.Probe(pctx, node)
			if p.err == nil && p.held.Node != node {
				p.err = errWrongNode
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return live
	}
	var revoke []fsm.Call
	why := map[string]string{} // node → why its claims are taken over
	for _, c := range live {
		p := probes[c.Node]
		if gone := e.gone(c, &p.held, p.err, strikes); gone != "" && !e.skip(c.RunID, c.ID, c.Due) {
			revoke = append(revoke, c)
			why[c.Node] = gone
		}
	}
	if len(revoke) > 0 {
		for node, reason := range why {
			e.log.Warn("taking over calls claimed by a process that is gone", "node", node, "reason", reason)
		}
		e.log.Info("re-sending calls taken over before their lease ended", "calls", len(revoke))
		e.buffer(revoke) // the loop claims them (Revoke), within the shares
		e.Wake()
	}
	return live
}

// gone says why claim c is to be taken over now ("" if it is not), from
// its claimant's answer to the probe (held) or the probe's error. strikes
// counts, per call, the probes in a row that found the claimant alive but
// the call not in hand or the node following another leader.
func (e *Executor) gone(c fsm.Call, held *Held, err error, strikes map[string]int) string {
	k := callKey(c.RunID, c.ID)
	switch {
	case err != nil:
		return "the node does not answer: " + err.Error()
	case held.Boot != c.Boot:
		return "the node restarted"
	case held.Leader == e.cfg.NodeID && held.has(c.RunID, c.ID):
		delete(strikes, k) // in hand, and its answer will come here
		return ""
	}
	if strikes[k]++; strikes[k] >= probeStrikes {
		return "the node no longer has the call in hand, or follows another leader"
	}
	return ""
}

type errString string

func (e errString) Error() string { return string(e) }

const errWrongNode = errString("another node answered at its address")
