package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Params are the costs the model is built from. The first block is measured
// (bench/README.md, or this program's -measure-fsync); the rest are
// assumptions, each named as one.
type Params struct {
	// Measured on the 2-core box (bench/README.md).
	CPUPerStepMs     float64 // Cairn leader CPU per step, CPU-bound burst, 16 senders: 0.349-0.387 ms
	RecordsPerStep   float64 // pit scenario: 100,028 records for 20,000 runs of 3 steps
	EntriesPerStep   float64 // Raft entries per step under load (group commit): about 0.6
	ApplyPerRecordMs float64 // fsm.ApplyEntries per record (pit rebuild): 60-80 µs
	LogBytesPerStep  float64 // raft/ growth per step with checkpointing: 508-518 B
	FsyncMs          float64 // fsync of a 4 KiB append here, p50: 0.22-0.53 ms over five runs of 300 (p99 0.5-8 ms); 0.52 is the busy box's
	StepsPerRun      float64 // the bench's function

	// Assumed.
	FollowerPerRecordMs float64 // a follower: apply (measured) + receive and append (assumed 20 µs)
	ReplSendPerRecordMs float64 // leader: send one record to one follower
	RouterHopMs         float64 // a node forwarding an event to the group leader that owns it
	XSendRecords        float64 // records a cross-partition message costs its sender (outbox, ack; batched)
	XDeliverRecords     float64 // CPU, in records, of each further delivery of one outbox record (a broadcast)
	XRecvRecords        float64 // records it costs its receiver (the message applied)
	XMsgBytes           float64 // bytes on the wire per cross-partition message
	AppBytesPerStep     float64 // app calls + checkpoint POSTs + answers, per step
	RTTMs               float64 // node-to-node round trip (LAN)
	CoresPerNode        float64
	Util                float64 // usable share of a node's CPU (bursts here reach 78-87% of the ceiling)
	Replicas            int
	NICBytesPerSec      float64 // per direction
	AllowanceBatch      float64 // slots/tokens of a shared key handed out per message
	LeaseSec            float64 // how often a node renews its cached registry + partition map
	Slots               int
	GroupsPerNode       int // leaders per node: nodes = max(Replicas, groups/GroupsPerNode)
}

// DefaultParams: measured figures from bench/README.md and the fsync
// measured on this machine; assumptions as commented in Params.
func DefaultParams() Params {
	return Params{
		CPUPerStepMs:     0.36,
		RecordsPerStep:   100028.0 / 60000.0,
		EntriesPerStep:   0.6,
		ApplyPerRecordMs: 0.07,
		LogBytesPerStep:  510,
		FsyncMs:          0.52,
		StepsPerRun:      3,

		FollowerPerRecordMs: 0.09,
		ReplSendPerRecordMs: 0.01,
		RouterHopMs:         0.05,
		XSendRecords:        0.5,
		XDeliverRecords:     0.1,
		XRecvRecords:        1,
		XMsgBytes:           600,
		AppBytesPerStep:     1000,
		RTTMs:               0.2,
		CoresPerNode:        2,
		Util:                0.8,
		Replicas:            3,
		NICBytesPerSec:      125e6,
		AllowanceBatch:      16,
		LeaseSec:            2,
		Slots:               DefaultSlots,
		GroupsPerNode:       1,
	}
}

// Mix is the workload: fractions of runs with each feature that may cross
// partitions. Runs are placed by PlacementKey; keys are uniform over slots
// except the hot one.
type Mix struct {
	Keyed        float64 // placed by their own flow-control key: decided locally, no message
	SecondKey    float64 // also under a further key owned elsewhere (per step, via allowances)
	SharedKey    float64 // under one cluster-wide key (an account-scoped or function-wide limit), per step
	Invoke       float64 // invoke a child function...
	InvokeRemote float64 // ...placed elsewhere (the child's function is keyed), of those
	Signal       float64 // wait for a signal (unique name: owned by hash(name))
	Wait         float64 // waitForEvent with an equality match (indexed by hash(name, value))
	Fanout       float64 // their event also triggers a run placed in another group
	Broadcast    float64 // their event must visit every group (unindexed wait/cancelOn `if`, bulk cancel)
	Hot          float64 // share of all runs under one placement key (one big tenant's key)
}

// DefaultMix is an assumed mix, not a measured one.
func DefaultMix() Mix {
	return Mix{Keyed: 0.3, SecondKey: 0.1, SharedKey: 0.05, Invoke: 0.1, InvokeRemote: 0.5,
		Signal: 0.05, Wait: 0.1, Fanout: 0.1, Broadcast: 0.01}
}

// Row is the model's answer for one partition map.
type Row struct {
	Groups, Nodes int
	RunsPerSec    float64
	StepsPerSec   float64
	CrossRuns     float64 // share of runs with at least one cross-partition message
	CrossPer100   float64 // cross-partition messages per 100 steps
	CrossRecords  float64 // share of appended records that are cross-partition messages
	Bound         string  // the constraint that binds
	GlobalShare   float64 // share of the binding node's CPU spent on global coordination
	GlobalCeiling float64 // runs/s at which global coordination alone would fill a node
	MetaUtil      float64 // meta group leader's load, share of its node
	DiskMBps      float64 // log bytes written per second on the busiest node (all its replicas)
	NICPct        float64 // busiest node's busier NIC direction
	PerFsync      float64 // log entries per fsync needed on the busiest node (one shared log store per node)
	XOpMs         float64 // latency a cross-partition message adds to what waits for it

	skewed             bool // the binding node is busier than the median node
	sharedOwner, hotAt int  // the groups of the shared key and of the hot key
}

// loads per run entering the system, for one group.
type groupLoad struct {
	leaderMs float64 // leader CPU, ms per run
	globalMs float64 // of which global coordination (shared-key owner, broadcast)
	records  float64 // records appended per run
	globRecs float64 // of which global coordination
	sent     float64 // cross-partition messages sent per run
	bytesOut float64 // leader's outgoing app + message bytes per run
	steps    float64
}

// Evaluate computes the throughput of the cluster a partition map describes:
// Replicas copies of each group, max(Replicas, groups/GroupsPerNode) nodes,
// the leader of group g on node g mod nodes, its followers on the next
// nodes. Every load is linear in the rate, so the throughput is where the
// first node (or a group's single apply loop) reaches its capacity.
func Evaluate(p Params, mix Mix, m *PartitionMap) Row {
	r := evaluate(p, mix, m)
	if strings.HasPrefix(r.Bound, "apply loop") {
		return r
	}
	// A node busier than most binds because of something placed on it: name
	// it by what removing it would gain (the shared key's owner, the hot
	// key's group, each its own counterfactual). Loads spread evenly bind as
	// node CPU, or as global coordination once that is most of it.
	best := ""
	if r.skewed {
		gain := 1.0
		try := func(name string, f func(*Mix)) {
			q := mix
			f(&q)
			if g := evaluate(p, q, m).RunsPerSec / r.RunsPerSec; g > gain {
				best, gain = name, g
			}
		}
		try(fmt.Sprintf("shared-key owner g%d", r.sharedOwner), func(q *Mix) { q.SharedKey = 0 })
		try(fmt.Sprintf("hot key's group g%d", r.hotAt), func(q *Mix) { q.Hot = 0 })
	}
	switch {
	case best != "":
		r.Bound = best
	case m.Groups == 1:
		r.Bound = "the leader's node"
	case r.GlobalShare > 0.5:
		r.Bound = "global coordination"
	case r.skewed:
		r.Bound = "node CPU, skewed"
	default:
		r.Bound = "node CPU, even"
	}
	return r
}

// The placement keys of the model's hot tenant and of its cluster-wide key.
const (
	hotKey    = "a\x00hot-tenant\x00"
	sharedKey = "p\x00account\x00shared"
)

func evaluate(p Params, mix Mix, m *PartitionMap) Row {
	G := m.Groups
	S := float64(len(m.Owner))
	counts := m.Counts()
	u := make([]float64, G)     // share of uniform keys a group owns
	sigma := make([]float64, G) // share of runs a group holds
	hot := m.Group(hotKey)
	for g := range u {
		u[g] = float64(counts[g]) / S
		sigma[g] = (1 - mix.Hot) * u[g]
	}
	sigma[hot] += mix.Hot
	owner := m.Group(sharedKey) // the cluster-wide key's owner

	recMs := p.CPUPerStepMs / p.RecordsPerStep
	recBytes := p.LogBytesPerStep / p.RecordsPerStep
	B := p.AllowanceBatch
	// Messages per run, by where they go.
	out := mix.SecondKey*p.StepsPerRun/B + // allowance refills of a key owned elsewhere
		mix.Invoke*mix.InvokeRemote + // start the child
		mix.Signal + // register the wait with the name's owner
		mix.Wait + // register with the index owner
		mix.Fanout // forward the event
	back := mix.Invoke*mix.InvokeRemote + // the child's result
		mix.Signal + // resume
		mix.Wait // resume
	uu := mix.Wait // the matching event, from its home to the index owner
	shared := mix.SharedKey * p.StepsPerRun / B

	gl := make([]groupLoad, G)
	crossTotal, crossRecs := 0.0, 0.0
	for g := range gl {
		var sent, recv, glob float64
		sent += sigma[g] * out * (1 - u[g])
		recv += out * u[g] * (1 - sigma[g])
		sent += back * u[g] * (1 - sigma[g])
		recv += back * sigma[g] * (1 - u[g])
		sent += uu * u[g] * (1 - u[g])
		recv += uu * u[g] * (1 - u[g])
		if g != owner {
			sent += sigma[g] * shared
			glob += sigma[g] * shared * p.XSendRecords
		} else {
			recv += (1 - sigma[g]) * shared
			glob += (1 - sigma[g]) * shared * p.XRecvRecords
		}
		// A broadcast is one outbox record addressed to every group, then a
		// delivery per group: its sender's cost still grows with G.
		var bcast, bcastRec, bcastCPU float64
		if G > 1 {
			bcast = sigma[g] * mix.Broadcast * float64(G-1)
			bcastRec = sigma[g] * mix.Broadcast * p.XSendRecords
			bcastCPU = sigma[g] * mix.Broadcast * float64(G-2) * p.XDeliverRecords
			recv += (1 - sigma[g]) * mix.Broadcast
			glob += bcastRec + (1-sigma[g])*mix.Broadcast*p.XRecvRecords
		}

		steps := sigma[g] * p.StepsPerRun
		xrec := sent*p.XSendRecords + recv*p.XRecvRecords + bcastRec
		gl[g] = groupLoad{
			leaderMs: steps*p.CPUPerStepMs + (xrec+bcastCPU)*recMs,
			globalMs: (glob + bcastCPU) * recMs,
			globRecs: glob,
			records:  steps*p.RecordsPerStep + xrec,
			sent:     sent + bcast,
			bytesOut: steps*p.AppBytesPerStep + (sent+bcast)*p.XMsgBytes,
			steps:    steps,
		}
		crossTotal += sent + bcast
		crossRecs += xrec
	}

	N := max(p.Replicas, (G+p.GroupsPerNode-1)/p.GroupsPerNode)
	nodeMs := make([]float64, N)
	nodeGlobal := make([]float64, N)
	nodeBytes := make([]float64, N) // log bytes written per run
	nodeEntries := make([]float64, N)
	nodeOut := make([]float64, N)
	nodeIn := make([]float64, N)
	for g, l := range gl {
		for k := 0; k < p.Replicas; k++ {
			n := (g + k) % N
			logBytes := l.records * recBytes
			nodeBytes[n] += logBytes
			nodeEntries[n] += l.records * p.EntriesPerStep / p.RecordsPerStep
			if k == 0 {
				nodeMs[n] += l.leaderMs + l.records*float64(p.Replicas-1)*p.ReplSendPerRecordMs
				nodeGlobal[n] += l.globalMs + l.globRecs*float64(p.Replicas-1)*p.ReplSendPerRecordMs
				nodeOut[n] += l.bytesOut + logBytes*float64(p.Replicas-1)
				nodeIn[n] += l.steps*p.AppBytesPerStep + l.sent*p.XMsgBytes // answers, messages in (≈ out)
			} else {
				nodeMs[n] += l.records * p.FollowerPerRecordMs
				nodeGlobal[n] += l.globRecs * p.FollowerPerRecordMs
				nodeIn[n] += logBytes
			}
		}
	}
	for n := range nodeMs { // events enter at any node: most are forwarded once
		nodeMs[n] += p.RouterHopMs * float64(N-1) / float64(N) / float64(N)
	}

	// The meta group: registry, partition map, wait shapes. Off the per-event
	// path (nodes cache it under a lease), so its load is per second, not per
	// run: each node renews its lease. With one group it is that group.
	capMs := p.CoresPerNode * p.Util * 1000
	metaMs := float64(N) / p.LeaseSec * recMs
	metaNode := 0
	if G > 1 { // the placement driver puts its leader on the least loaded node
		for n := range nodeMs {
			if nodeMs[n] < nodeMs[metaNode] {
				metaNode = n
			}
		}
	}
	fixed := make([]float64, N)
	fixed[metaNode] = metaMs

	rate, bound, bn := math.Inf(1), "", 0
	for n := range nodeMs {
		if r := (capMs - fixed[n]) / nodeMs[n]; r < rate {
			rate, bn, bound = r, n, "node CPU"
		}
	}
	applyCap := 1000 * p.Util // one apply loop per group
	for g, l := range gl {
		if r := applyCap / (l.records * p.ApplyPerRecordMs); r < rate {
			rate, bound = r, fmt.Sprintf("apply loop of g%d", g)
			bn = g % N
		}
	}

	globalShare := (nodeGlobal[bn]*rate + fixed[bn]) / (nodeMs[bn]*rate + fixed[bn])
	sorted := slices.Clone(nodeMs)
	slices.Sort(sorted)
	skewed := nodeMs[bn] > 1.05*sorted[len(sorted)/2]
	// Where global coordination alone would fill a node: the owner's
	// refills, and on every group the broadcasts it sends and receives.
	gc := math.Inf(1)
	for n := range nodeGlobal {
		if nodeGlobal[n] > 0 {
			gc = min(gc, capMs/nodeGlobal[n])
		}
	}

	// Cross-partition runs: a run is one if any of its features is remote.
	remote := 1 - 1/float64(G) // a uniform key owned by another group (balanced map)
	noCross := (1 - mix.SecondKey*remote) * (1 - mix.SharedKey*remote) *
		(1 - mix.Invoke*mix.InvokeRemote*remote) * (1 - mix.Signal*remote) *
		(1 - mix.Wait*remote) * (1 - mix.Fanout*remote)
	if G > 1 {
		noCross *= 1 - mix.Broadcast
	}
	records := 0.0
	for _, l := range gl {
		records += l.records
	}
	commit := p.RTTMs + p.FsyncMs // leader fsync ∥ followers' append + fsync, one round
	return Row{
		Groups: G, Nodes: N,
		RunsPerSec:    rate,
		StepsPerSec:   rate * p.StepsPerRun,
		CrossRuns:     1 - noCross,
		CrossPer100:   100 * crossTotal / p.StepsPerRun,
		CrossRecords:  crossRecs / records,
		Bound:         bound,
		GlobalShare:   globalShare,
		GlobalCeiling: gc,
		MetaUtil:      metaMs / capMs,
		DiskMBps:      maxOf(nodeBytes) * rate / 1e6,
		NICPct:        100 * max(maxOf(nodeOut), maxOf(nodeIn)) * rate / p.NICBytesPerSec,
		PerFsync:      maxOf(nodeEntries) * rate * p.FsyncMs / 1000,
		XOpMs:         p.RTTMs + 2*commit, // message and reply, the receiver's commit, then the sender's
		skewed:        skewed,
		sharedOwner:   owner,
		hotAt:         hot,
	}
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, x := range v[1:] {
		m = max(m, x)
	}
	return m
}
