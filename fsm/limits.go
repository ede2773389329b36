package fsm

import "fmt"

// Limits bound what one run may hold, as Inngest documents its own (usage
// limits: step output 4 MB, run state 32 MB, 1,000 steps per function).
// Apply enforces them, so they must be the same on every replica and on
// replay: they live in the log (LimitsSet), not in each node's flags. Until
// the first LimitsSet there are none, as in the releases before limits (so
// their logs replay the same); a leader records its limits when it takes
// office. A zero field is no limit.
type Limits struct {
	// StepOutputBytes bounds one step's output or error, and a run's
	// result: an answer over it is screened (ScreenAnswer).
	StepOutputBytes int64 `msgpack:"out"`
	// RunStateBytes bounds a run's events plus its memoized step values.
	RunStateBytes int64 `msgpack:"state"`
	// StepsPerRun bounds the steps a run memoizes.
	StepsPerRun int `msgpack:"steps"`
}

// Default limits. The event and request limits are the API's: it refuses
// bigger inputs before anything is proposed, so they need not be recorded.
const (
	DefaultStepOutputBytes = 4 << 20
	DefaultRunStateBytes   = 32 << 20
	DefaultStepsPerRun     = 1000
	DefaultEventBytes      = 1 << 20
	DefaultRequestBytes    = 10 << 20
)

// DefaultLimits are the limits a node is configured with by default.
var DefaultLimits = Limits{StepOutputBytes: DefaultStepOutputBytes, RunStateBytes: DefaultRunStateBytes,
	StepsPerRun: DefaultStepsPerRun}

// Names of the errors a run fails with when it passes a limit. The last
// two are Inngest's own, so that its documentation applies.
const (
	ErrOutputTooLarge     = "OutputTooLarge"
	ErrStateOverflowed    = "InngestErrStateOverflowed"
	ErrFunctionOverflowed = "InngestErrFunctionOverflowed"
)

// AppResponseBytes is the largest app answer the executor reads: room for
// a few parallel steps at the output limit, at least 16 MiB.
func (l Limits) AppResponseBytes() int64 { return max(16<<20, 4*l.StepOutputBytes) }

// ScreenAnswer makes an app's answer fit the step output limit before it
// is recorded: a step whose output (or error, or options) is larger fails
// with an OutputTooLarge error in place of its value, an error body that is
// larger is replaced by one, and a run result that is larger fails the run
// (Fail). The executor screens answers before proposing them, so that no
// oversized value reaches the log; Apply screens them again, because an
// answer may come from another node. It reports whether it changed r.
func ScreenAnswer(r *CallFinished, l Limits) (screened bool) {
	limit := l.StepOutputBytes
	if limit <= 0 {
		return false
	}
	for i, op := range r.Ops {
		size := int64(max(len(op.Data), len(op.Error), len(op.Opts)))
		if size <= limit {
			continue
		}
		screened = true
		if op.Op == OpRunComplete {
			r.Ops, r.Body, r.Fail = nil, nil, outputError("the function's result", size, limit)
			return true
		}
		failed := Op{ID: op.ID, Op: OpStepFailed, Name: op.Name, DisplayName: op.DisplayName,
			Error: outputError("the step's output", size, limit)}
		if op.Op == OpStepError {
			failed.Op = op.Op // still retried
		}
		r.Ops[i] = failed
	}
	if size := int64(len(r.Body)); size > limit {
		screened = true
		if r.SDK && r.Status == 200 {
			r.Body, r.Fail = nil, outputError("the function's result", size, limit)
		} else {
			r.Body = outputError("the app's answer", size, limit)
		}
	}
	return screened
}

func outputError(what string, size, limit int64) []byte {
	return errJSON(ErrOutputTooLarge, fmt.Sprintf("%s is %d bytes; the limit is %s", what, size, SizeText(limit)))
}

// overflow returns the error that fails a run about to hold state bytes in
// steps memoized values, or nil if that is within the limits.
func (l Limits) overflow(state int64, steps int) []byte {
	switch {
	case l.StepsPerRun > 0 && steps > l.StepsPerRun:
		return errJSON(ErrFunctionOverflowed, fmt.Sprintf("The function run exceeded the step limit of %d steps.", l.StepsPerRun))
	case l.RunStateBytes > 0 && state > l.RunStateBytes:
		return errJSON(ErrStateOverflowed, fmt.Sprintf("The function run exceeded the state size limit of %s: "+
			"its events and step data would take %d bytes.", SizeText(l.RunStateBytes), state))
	}
	return nil
}

// SizeText writes a byte count the way the limits are usually given.
func SizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
