// Package state is one call of a function: the memoized steps the server
// sent, the ops this call found, and the rule that decides, for each step
// the code reaches, whether it is replayed, run here, planned, or stops the
// call. The sdk package fills it from the request; the step package reads it.
package state

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/sdk/protocol"
)

// DiscoveryStep is the stepId of a call that asks "what next?".
const DiscoveryStep = protocol.DiscoveryStep

// CompleteID is sha1("complete"): the op id of RunComplete.
var CompleteID = Hash("complete")

// Hash is a step's wire id: hex(sha1(id)).
func Hash(id string) string {
	sum := sha1.Sum([]byte(id))
	return hex.EncodeToString(sum[:])
}

// Op is one opcode of a 206 answer (protocol note §6.1).
type Op struct {
	ID          string          `json:"id"`
	Op          string          `json:"op"`
	Name        string          `json:"name,omitempty"`
	Opts        map[string]any  `json:"opts"`
	DisplayName string          `json:"displayName,omitempty"`
	Userland    *Userland       `json:"userland,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	Error       json.RawMessage `json:"error,omitempty"`
	Timing      *Timing         `json:"timing,omitempty"`
}

// Userland is the step id as written in code, and its repeat index.
type Userland struct {
	ID    string `json:"id"`
	Index int    `json:"index,omitempty"`
}

// Timing is when a step ran: start and duration in nanoseconds.
type Timing struct {
	Start    int64 `json:"a"`
	Duration int64 `json:"b"`
}

// Step is one step the code reached: its user id and its wire id.
type Step struct {
	ID    string // as written in code
	Index int    // 0 for the first use of ID in this run, n for the n-th repeat
	Hash  string // wire id: sha1(ID) or sha1(ID:n)
}

// Op starts an op of kind op for this step.
func (s Step) Op(op, name string) Op {
	o := Op{ID: s.Hash, Op: op, Name: name, DisplayName: s.ID, Opts: map[string]any{}, Userland: &Userland{ID: s.ID, Index: s.Index}}
	return o
}

// Action is what the step tools do with a step that has no memoized result.
type Action int

const (
	// Execute runs the step's code in this call.
	Execute Action = iota
	// Plan reports the step (StepPlanned, or the async op) and stops.
	Plan
	// Skip stops without reporting: a targeted call that reached a step
	// other than its target.
	Skip
)

// Sender sends events and signals for step.SendEvent and step.SendSignal.
type Sender interface {
	SendEvents(ctx context.Context, events []any) ([]string, error)
	SendSignal(ctx context.Context, signal string, data any) (string, error)
}

// Checkpointer takes steps that ran and lets the code carry on in the same
// call (durable endpoints). Checkpoint returns an error when the steps could
// not be saved: the call then stops and reports them as ops.
type Checkpointer interface {
	Checkpoint(ctx context.Context, ops []Op) error
}

// Run is one call of one function.
type Run struct {
	RunID            string
	AppID            string
	Attempt          int
	MaxAttempts      int // 0 when the server did not say
	Target           string
	DisableImmediate bool
	Memo             map[string]json.RawMessage
	Sender           Sender
	// Checkpointer, when set, lets steps that ran continue inline until
	// Deadline (zero: no limit).
	Checkpointer Checkpointer
	Deadline     time.Time
	// CheckpointErr is why the last checkpoint failed, if it did.
	CheckpointErr error

	counts   map[string]int
	ops      []Op
	found    []Op // new steps a targeted call reached besides its target
	executed bool
	parallel int
	// Set by a step that failed: the answer's X-Inngest-No-Retry and Retry-After.
	NoRetry    bool
	RetryAt    time.Time
	stepFailed bool
}

type ctxKey struct{}

// With returns ctx carrying r.
func With(ctx context.Context, r *Run) context.Context { return context.WithValue(ctx, ctxKey{}, r) }

// From returns the run in ctx, or nil outside a function call.
func From(ctx context.Context) *Run {
	r, _ := ctx.Value(ctxKey{}).(*Run)
	return r
}

// Next names the next use of id: repeats of one id in a run hash "id:n".
func (r *Run) Next(id string) Step {
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	n := r.counts[id]
	r.counts[id] = n + 1
	key := id
	if n > 0 {
		key = id + ":" + strconv.Itoa(n)
	}
	return Step{ID: id, Index: n, Hash: Hash(key)}
}

// Memoized returns the stored result of a step, if the server sent one.
func (r *Run) Memoized(s Step) (json.RawMessage, bool) {
	v, ok := r.Memo[s.Hash]
	return v, ok
}

// Memoize stores a result the code produced in this call (a checkpointed step).
func (r *Run) Memoize(hash string, v json.RawMessage) {
	if r.Memo == nil {
		r.Memo = map[string]json.RawMessage{}
	}
	r.Memo[hash] = v
}

// Decide says what to do with a step that has no result yet. runnable is
// true for steps whose code runs in the app (step.Run, SendEvent); others
// (sleeps, waits, invokes) are always reported to the server.
func (r *Run) Decide(s Step, runnable bool) Action {
	if r.Target != "" && r.Target != DiscoveryStep {
		if s.Hash == r.Target && runnable {
			return Execute
		}
		return Skip
	}
	if !runnable || r.parallel > 0 || r.DisableImmediate {
		return Plan
	}
	if r.Checkpointer != nil && !r.Deadline.IsZero() && time.Now().After(r.Deadline) {
		return Plan // ran long enough in this call: hand the next step to a new one
	}
	return Execute
}

// Report records an op and stops this branch of the code.
func (r *Run) Report(op Op) {
	r.Add(op)
	panic(interrupt{})
}

// Add records an op for the answer, without stopping anything.
func (r *Run) Add(op Op) { r.ops = append(r.ops, op) }

// Found records a step a targeted call reached that was not its target, and stops.
func (r *Run) Found(op Op) {
	r.found = append(r.found, op)
	panic(interrupt{})
}

// Executed records the op of a step that ran here. A failed step, or one the
// call cannot checkpoint, stops the call; a good one checkpointed inline
// lets the code go on.
func (r *Run) Executed(ctx context.Context, op Op, failed bool) {
	if !failed && r.Checkpointer != nil && r.parallel == 0 {
		err := r.Checkpointer.Checkpoint(ctx, []Op{op})
		if err == nil {
			r.Memoize(op.ID, wrapData(op.Data))
			return
		}
		r.CheckpointErr = err
	}
	r.executed = true
	r.stepFailed = failed
	r.ops = append(r.ops, op)
	panic(interrupt{})
}

func wrapData(data json.RawMessage) json.RawMessage {
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	return append(append(json.RawMessage(`{"data":`), data...), '}')
}

// Parallel runs each branch in turn, each until it finishes or reaches a
// step it must report, and stops the call if any branch stopped. Branches
// run one after another, so step ids are hashed in a fixed order.
func (r *Run) Parallel(branches []func() error) error {
	r.parallel++
	defer func() { r.parallel-- }()
	var first error
	stopped := false
	for _, b := range branches {
		err, stop := r.branch(b)
		if stop {
			if r.executed {
				panic(interrupt{}) // a targeted call ran its step: nothing else matters
			}
			stopped = true
			continue
		}
		if err != nil && first == nil {
			first = err
		}
	}
	if stopped {
		panic(interrupt{})
	}
	return first
}

func (r *Run) branch(b func() error) (err error, stopped bool) {
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(interrupt); !ok {
				panic(v)
			}
			stopped = true
		}
	}()
	return b(), false
}

// interrupt unwinds the user's code when a call has nothing more to do.
type interrupt struct{}

// Call runs fn, catching the unwinding of a stopped call. stopped is true
// when the code did not return on its own. A panic of the code is its
// error, as a throw is in the TS SDK.
func Call(fn func() (any, error)) (result any, err error, stopped bool) {
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(interrupt); ok {
				stopped = true
				return
			}
			err = Panicked(v)
		}
	}()
	result, err = fn()
	return result, err, false
}

// Safely runs a step's code, turning its panic into its error. The SDK's
// own unwinding passes through.
func Safely[T any](fn func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(interrupt); ok {
				panic(p)
			}
			err = Panicked(p)
		}
	}()
	return fn()
}

// Panicked is the error of code that panicked with v.
func Panicked(v any) error {
	if err, ok := v.(error); ok {
		return fmt.Errorf("panic: %w", err)
	}
	return fmt.Errorf("panic: %v", v)
}

// Outcome is what a call found, for the sdk package to answer with.
type Outcome struct {
	Ops        []Op // ops to answer with (206)
	Found      []Op // a targeted call's other new steps (step not found)
	Executed   bool // a step ran in this call; Ops holds only it
	StepFailed bool
}

// Outcome reports what the call found.
func (r *Run) Outcome() Outcome {
	return Outcome{Ops: r.ops, Found: r.found, Executed: r.executed, StepFailed: r.stepFailed}
}

// LastAttempt is true when this attempt is the last the server will make.
func (r *Run) LastAttempt() bool {
	return r.MaxAttempts > 0 && r.Attempt+1 >= r.MaxAttempts
}
