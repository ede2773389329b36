// Package protocol names the wire vocabulary the server and the SDK share
// (../shared/protocol, "the protocol note"): opcodes and the body of an
// execution call. The server encodes calls with these types and the SDK
// decodes them, so the two cannot drift apart.
package protocol

import "encoding/json"

// Opcodes of a 206 answer (op.op, protocol note §6.2).
const (
	OpStepRun        = "StepRun"
	OpStep           = "Step" // older SDKs' StepRun
	OpStepError      = "StepError"
	OpStepFailed     = "StepFailed"
	OpStepPlanned    = "StepPlanned"
	OpSleep          = "Sleep"
	OpWaitForEvent   = "WaitForEvent"
	OpWaitForSignal  = "WaitForSignal"
	OpInvokeFunction = "InvokeFunction"
	OpRunComplete    = "RunComplete"
	OpNone           = "None"
	// OpDiscoveryRequest: a durable endpoint ran past its maxRuntime and
	// hands the run to the engine (only in a checkpoint).
	OpDiscoveryRequest = "DiscoveryRequest"
)

// DiscoveryStep is the stepId of a call that asks "what next?" rather than
// naming a planned step.
const DiscoveryStep = "step"

// CallRequest is the body of an execution call (protocol note §4.1).
type CallRequest struct {
	Event   json.RawMessage            `json:"event"`
	Events  []json.RawMessage          `json:"events"`
	Steps   map[string]json.RawMessage `json:"steps"`
	Ctx     CallCtx                    `json:"ctx"`
	Version int                        `json:"version"`
	UseAPI  bool                       `json:"use_api"`
}

// CallCtx is where the run stands.
type CallCtx struct {
	RunID                     string    `json:"run_id"`
	Attempt                   int       `json:"attempt"`
	MaxAttempts               int       `json:"max_attempts"`
	DisableImmediateExecution bool      `json:"disable_immediate_execution"`
	UseAPI                    bool      `json:"use_api"`
	Stack                     CallStack `json:"stack"`
	// FnID and QiID turn on async checkpointing in the SDK (protocol note
	// §9.1); absent, it answers each step.
	FnID         string `json:"fn_id,omitempty"`
	QiID         string `json:"qi_id,omitempty"`
	GenerationID int    `json:"generation_id,omitempty"`
}

// CallStack lists the memoized steps in the order they completed.
type CallStack struct {
	Stack   []string `json:"stack"`
	Current int      `json:"current"`
}
