// Package api is Cairn's HTTP surface, all on one port: the SDK-facing
// endpoints (/e/:key, /fn/register) and Cairn's own (/v1/..., /health,
// /metrics). It is thin: it validates input, proposes records through
// raftnode, and renders views of the fsm projection.
//
// Invariant: a request that gets a 4xx appends nothing to the log, because
// every check happens before the proposal.
package api
