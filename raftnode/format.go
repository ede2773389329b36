package raftnode

import (
	"sync"
	"time"

	"github.com/cairn-dev/cairn/fsm"
)

// formatTTL is how long the cluster's format version is reused before
// it is read again: it changes only when members join or are upgraded.
const formatTTL = time.Second

// formatCache remembers the cluster's format version (fsm/format.go).
type formatCache struct {
	mu  sync.Mutex
	val int
	at  time.Time
}

// ClusterFormat is the lowest record format version among the members:
// what every record proposed must be readable in. fresh reads it now
// instead of reusing a reading up to a second old.
func (n *Node) ClusterFormat(fresh bool) int {
	n.format.mu.Lock()
	defer n.format.mu.Unlock()
	if !fresh && n.format.val > 0 && time.Since(n.format.at) < formatTTL {
		return n.format.val
	}
	members, err := n.Members()
	if err != nil {
		return 1 // unknown: assume the oldest
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	v, err := n.fsm.ClusterFormat(ids)
	if err != nil {
		return 1
	}
	n.format.val, n.format.at = v, time.Now()
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
