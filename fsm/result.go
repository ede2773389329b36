package fsm

import "fmt"

// Code is the business outcome of applying one record. Codes are values, not
// errors: every replica computes the same one.
type Code uint8

const (
	OK        Code = iota
	Duplicate      // already applied (event id seen, step already has a result)
	Stale          // the claim or timer it refers to is no longer current
	NotFound       // the run or call it refers to does not exist
	Rejected       // not allowed in the current state (e.g. run already finished)
	Ignored        // a record of an ignorable kind this node does not know
)

var codeNames = [...]string{"ok", "duplicate", "stale", "not_found", "rejected", "ignored"}

// String names the code; a value this release does not know (a newer
// release's, a corrupt one) is shown as a number rather than panicking.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Result is what Apply returns for one record.
type Result struct {
	Code Code
	// ID is the event id that stands for an accepted event (the original one
	// on a duplicate), or the run id for run records.
	ID string
	// Runs lists the runs an accepted event started.
	Runs []string
	// Gen is the call generation after a successful claim.
	Gen uint32
	// Claimed lists the calls leased to the proposer by LeaseNext.
	Claimed []Call
	// Modified reports whether an AppSynced changed anything.
	Modified bool
	// Msg explains a non-OK code.
	Msg string
}
