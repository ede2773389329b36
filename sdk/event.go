package sdk

import "encoding/json"

// Event is an event with data of type T.
type Event[T any] struct {
	Name string         `json:"name"`
	Data T              `json:"data"`
	ID   string         `json:"id,omitempty"` // an id you set is an idempotency key
	TS   int64          `json:"ts,omitempty"` // unix milliseconds; the server sets it when 0
	V    string         `json:"v,omitempty"`
	User map[string]any `json:"user,omitempty"`
}

// RawEvent is an event whose data is left as JSON.
type RawEvent = Event[json.RawMessage]

// Input is what a function receives: the event that started the run (the
// first, for a batch), all of them, and where the run stands.
type Input[T any] struct {
	Event   Event[T]
	Events  []Event[T]
	RunID   string
	Attempt int // 0 on the first attempt of the current step
}

// FailureData is the data of the inngest/function.failed event an
// OnFailure handler receives.
type FailureData struct {
	FunctionID string          `json:"function_id"`
	RunID      string          `json:"run_id"`
	Event      RawEvent        `json:"event"`
	Error      FailureError    `json:"error"`
	Result     json.RawMessage `json:"result,omitempty"`
}

// FailureError is the error the failed run ended with.
type FailureError struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}
