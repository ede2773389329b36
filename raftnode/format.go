package raftnode

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-dev/cairn/fsm"
)

// formatTTL is how long the cluster's format version is reused before
// it is read again: it changes only when members join or are upgraded.
const formatTTL = time.Second

// formatCache remembers the cluster's format version (fsm/format.go). The
// reading is packed into one atomic word (version, time read) so that
// Propose, which asks on every call, takes no lock while it is fresh.
type formatCache struct {
	mu   sync.Mutex // serializes re-reads
	word atomic.Uint64
}

func packFormat(v int, at time.Time) uint64 { return uint64(at.UnixMilli())<<8 | uint64(uint8(v)) }

func unpackFormat(w uint64) (int, time.Time) { return int(uint8(w)), time.UnixMilli(int64(w >> 8)) }

// ClusterFormat is the lowest record format version among the members:
// what every record proposed must be readable in. fresh reads it now
// instead of reusing a reading up to a second old.
func (n *Node) ClusterFormat(fresh bool) int {
	if v, at := unpackFormat(n.format.word.Load()); !fresh && v > 0 && time.Since(at) < formatTTL {
		return v
	}
	n.format.mu.Lock()
	defer n.format.mu.Unlock()
	members, err := n.Members()
	if err != nil {
		return 1 // unknown: assume the oldest
	}
	ids := make([]string, 0, len(members))
	for _, m := range members {
		// This node runs this release: until its NodeSeen is applied (the
		// first moments of a term) it counts as what it is, not as the
		// oldest, or a fresh node refuses newer records at start. A member
		// whose record says otherwise (an older release) still counts.
		if m.ID == n.cfg.NodeID {
			if seen, err := n.fsm.Node(m.ID); err == nil && seen == nil {
				continue
			}
		}
		ids = append(ids, m.ID)
	}
	v, err := n.fsm.ClusterFormat(ids)
	if err != nil {
		return 1
	}
	n.format.word.Store(packFormat(v, time.Now()))
	return v
}

// downgrade makes records readable by every member (fsm.Downgrade).
func (n *Node) downgrade(recs []fsm.Record) error {
	v := n.ClusterFormat(false)
	if v >= fsm.FormatVersion {
		return nil
	}
	for _, r := range recs {
		if err := fsm.Downgrade(r, v); err != nil {
			return err
		}
	}
	return nil
}
