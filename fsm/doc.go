// Package fsm is Cairn's run state machine: a deterministic projection of the
// replicated log into Pebble.
//
// Every committed Raft entry carries a batch of records (see codec.go). Apply
// decodes them and turns each into writes on one Pebble batch, together with
// the applied index, so a restart resumes from the projection instead of
// replaying the whole log, and memory does not grow with the number of runs.
//
// Determinism rules, which every replica and every replay depends on:
//   - Apply never reads the wall clock, random numbers or the network. Time
//     is the At field of each record, set by the proposer; retry jitter is a
//     number carried in the record; ids are either in the record or derived
//     from it by a pure function (see runID).
//   - Apply never iterates a Go map to produce writes.
//   - Business outcomes (duplicate, stale, not found, rejected) are Result
//     values, identical on every node; only an undecodable entry panics,
//     because a node that cannot read the log cannot follow it.
//
// Every record that touches a run is also appended to that run's history
// (keys under "h/"), which is never rewritten: it is the audit trail.
//
// The executor reads the projection through the View methods (view.go) and
// never writes it: the only way to change state is to propose a record.
package fsm
