package raftnode

import (
	"context"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// A node whose own release is not recorded yet (no NodeSeen: the first
// moments of a fresh node) counts as what it runs, so newer records are
// not refused at start; a record saying it runs an older release still
// holds them back.
func TestOwnReleaseCountsBeforeItIsRecorded(t *testing.T) {
	n := openNode(t, t.TempDir(), "n1", freeAddr(t), nil)
	waitFor(t, "leadership", n.IsLeader)
	if seen, _ := n.f.Node("n1"); seen != nil {
		t.Fatal("the test needs a node that has not recorded itself")
	}
	if v := n.ClusterFormat(true); v != fsm.FormatVersion {
		t.Fatalf("a lone node not yet recorded reads format %d, want %d", v, fsm.FormatVersion)
	}
	if _, err := n.Propose(context.Background(), &fsm.NodeSeen{At: 1, ID: "n1", Format: 0}); err != nil {
		t.Fatal(err)
	}
	if v := n.ClusterFormat(true); v != 1 {
		t.Fatalf("a node recorded as the oldest release reads format %d, want 1", v)
	}
}
