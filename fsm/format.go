package fsm

import (
	"errors"
	"fmt"
)

// FormatVersion is the record format this release reads and writes.
//
// How a record kind or field is added without a cluster of mixed releases
// computing two states (during a rolling upgrade old nodes apply what new
// leaders propose):
//
//   - A new kind gets the next number and, in the kinds table, the format
//     version that introduces it. Below that version the leader refuses to
//     propose it (Downgrade), so old nodes never meet it; a kind that old
//     nodes may skip without changing their state can instead carry the
//     KindIgnorable bit.
//   - A new field is omitempty, and Downgrade clears it below its version,
//     so that every node applies the record the same way: as the old
//     release would. Apply must treat the field's absence as the old
//     behaviour (and so do old logs replayed by this release).
//   - Decoding is strict: a node meeting a field it does not know stops
//     rather than drop it.
//   - Bump FormatVersion, and add a testdata/prevrelease case if the old
//     format leaves something new to check.
//
// NodeSeen.Format itself is never cleared: it only describes a member, old
// nodes drop it without consequence, and it is how the cluster learns that
// the members have been upgraded.
//
// Format 4 adds no record: it lets the leader compress entries (codec.go),
// which members of format 3 could not read. Format 5 adds CallClaimed.Revoke,
// format 6 LeaseNext.Keep.
//
// A member's version is recorded by NodeSeen (the leader's own at term
// start, a follower's when it joins or restarts); the cluster's is the
// lowest among the members (ClusterFormat).
const FormatVersion = 6

// ErrFormat is returned for a record the cluster cannot read yet.
var ErrFormat = errors.New("not every member of the cluster runs a release that reads this record")

// Downgrade makes r readable by every member of a cluster whose lowest
// format version is format: it clears the fields newer than format, and
// refuses a kind newer than format.
func Downgrade(r Record, format int) error {
	if format >= FormatVersion {
		return nil
	}
	if i, ok := r.Kind().info(); ok && i.since > format {
		return fmt.Errorf("%w: %s needs format %d, the cluster reads %d", ErrFormat, i.name, i.since, format)
	}
	if format < 6 {
		downgradeTo5(r)
	}
	if format < 5 {
		downgradeTo4(r)
	}
	if format < 3 {
		downgradeTo2(r)
	}
	if format < 2 {
		downgradeTo1(r)
	}
	return nil
}

// downgradeTo5 clears the fields of format 6: a lease's Keep (below it,
// an answer's run may lose its slot to other claims of the entry).
func downgradeTo5(r Record) {
	if r, ok := r.(*CallFinished); ok && r.Lease != nil {
		r.Lease.Keep = false
	}
}

// downgradeTo4 clears the fields of format 5: a claim's revocation of
// another (below it, a claim waits out the lease it would revoke).
func downgradeTo4(r Record) {
	if r, ok := r.(*CallClaimed); ok {
		r.Revoke = false
	}
}

// downgradeTo2 clears the fields of format 3: who caused a record (By)
// and the event a replay sends again.
func downgradeTo2(r Record) {
	switch r := r.(type) {
	case *AppSynced:
		r.By = ""
	case *EventAccepted:
		r.By, r.ReplayedFrom = "", ""
	case *CancelRequested:
		r.By = ""
	case *SignalReceived:
		r.By = ""
	case *BulkCancel:
		r.By = ""
	}
}

// downgradeTo1 clears the fields of format 2: app ownership and the fair
// shares of leases.
func downgradeTo1(r Record) {
	switch r := r.(type) {
	case *AppSynced:
		r.Owner, r.MayReplace, r.Exclusive = "", nil, false
	case *EventAccepted:
		r.Lease.downgrade()
	case *CallFinished:
		r.Fail = nil
		r.Lease.downgrade()
	case *TimerFired:
		r.Lease.downgrade()
	case *SignalReceived:
		r.Lease.downgrade()
	case *CronFired:
		r.Lease.downgrade()
	}
}

// downgrade clears the fair-share bounds of a lease (format 2).
func (l *LeaseNext) downgrade() {
	if l != nil {
		l.Max, l.Each, l.Rooms = 0, 0, nil
	}
}

// ClusterFormat is the lowest format version among the given members, as
// recorded by their NodeSeen records (1 for a member never seen with one).
func (f *FSM) ClusterFormat(members []string) (int, error) {
	lowest := FormatVersion
	for _, id := range members {
		n, err := f.Node(id)
		if err != nil {
			return 0, err
		}
		v := 1
		if n != nil && n.Format > 0 {
			v = n.Format
		}
		lowest = min(lowest, v)
	}
	return lowest, nil
}
