// Package executor turns due work in the projection into calls to users'
// apps, and their answers into proposals. It runs only on the leader.
//
// The loop pulls: Apply merely wakes it (a non-blocking send), and it reads
// due calls from the projection, so the first pull after a leadership change
// is also the recovery scan. For each due call it first proposes a claim
// with a lease (so a later leader knows the call was in flight), then calls
// the app, then proposes what the app answered. It decides nothing itself:
// retries, memoization and run completion are decided in fsm.Apply.
package executor
