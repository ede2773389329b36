package api

import (
	"context"
	"time"

	"github.com/cairn-dev/cairn/archive"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/pointintime"
	"github.com/cairn-dev/cairn/raftnode"
)

// Node is what the API needs of the Raft node (*raftnode.Node): small, so
// that handler tests can stand in a fake for a cluster.
type Node interface {
	ID() string
	IsLeader() bool
	CaughtUp() bool
	Leader() (addr, id string)
	Propose(ctx context.Context, recs ...fsm.Record) ([]fsm.Result, error)
	Stats() raftnode.Stats
	Members() ([]raftnode.Member, error)
	AddVoter(id, raftAddr string) error
	RemoveServer(id string) error
	// LogSource reads committed log entries, archived ones included.
	LogSource() *raftnode.LogSource
	// ArchiveStatus describes the archive (nil when it is off).
	ArchiveStatus() *archive.Status
}

// Projection is what the API reads of the projection (*fsm.FSM).
type Projection interface {
	Applied() (index, digest uint64)
	StateDigest() (string, error)
	Summary() (fsm.Summary, error)
	Limits() (fsm.Limits, error)
	App(id string) (*fsm.App, error)
	Apps() ([]fsm.App, error)
	Function(id string) (*fsm.Function, error)
	Event(id string) ([]byte, error)
	Memo(runID, stepID string) ([]byte, error)
	EventOrigin(id string) (fsm.EventOrigin, error)
	Events(q fsm.EventQuery) ([]fsm.StoredEvent, string, error)
	Run(id string) (*fsm.Run, error)
	RunsForEvent(eventID string) ([]string, error)
	RecentRuns(limit int) ([]fsm.Run, error)
	RecentRunsWhere(q fsm.RunQuery) ([]fsm.Run, error)
	RunCalls(runID string) ([]fsm.Call, error)
	RunsCalls(runIDs []string) (map[string][]fsm.Call, error)
	History(runID string) ([]fsm.HistoryEntry, error)
	Node(id string) (*fsm.NodeSeen, error)
	SignalWaiter(signal string) (string, error)
	SyncRefused(r *fsm.AppSynced) (string, error)
	BulkCancelMatches(r *fsm.BulkCancel) (bool, error)
	Refusal(cf *fsm.CallFinished, complete bool) (res fsm.Result, refused bool, err error)
	CheckpointRefusal(r *fsm.StepsCheckpointed, fnUUID string) (res fsm.Result, refused bool, err error)
	FunctionRuns(q fsm.RunQuery) ([]fsm.Run, error)
	ResolveStep(runID, step string) (id string, ok bool, err error)
	Replay(id string) (*fsm.Replay, error)
	ReplayRuns(id string, from, limit int) ([]fsm.ReplayRun, error)
}

// PastStates builds the projection as it was at a past log index
// (*pointintime.States): ?at_index= and ?at= reads. Its errors
// pointintime.ErrAhead and ErrCompacted say why an index cannot be read.
type PastStates interface {
	At(ctx context.Context, index uint64) (*pointintime.State, error)
	IndexAt(ctx context.Context, t time.Time) (uint64, error)
}

var (
	_ Node       = (*raftnode.Node)(nil)
	_ Projection = (*fsm.FSM)(nil)
	_ PastStates = (*pointintime.States)(nil)
)
