package sdk

import (
	"encoding/json"
	"errors"
	"time"
)

// NonRetriableError marks an error that retrying cannot fix: a step or a
// function that returns it fails at once, without using its retries.
type NonRetriableError struct{ Err error }

// NonRetriable wraps err so it is not retried.
func NonRetriable(err error) error { return &NonRetriableError{Err: err} }

func (e *NonRetriableError) Error() string { return e.Err.Error() }
func (e *NonRetriableError) Unwrap() error { return e.Err }

// RetryAtError asks for the next attempt no earlier than At.
type RetryAtError struct {
	Err error
	At  time.Time
}

// RetryAt wraps err so the next attempt waits until at.
func RetryAt(err error, at time.Time) error { return &RetryAtError{Err: err, At: at} }

// RetryAfter wraps err so the next attempt waits d.
func RetryAfter(err error, d time.Duration) error { return RetryAt(err, time.Now().Add(d)) }

func (e *RetryAtError) Error() string { return e.Err.Error() }
func (e *RetryAtError) Unwrap() error { return e.Err }

// StepError is a step that failed for good (all its attempts used, or a
// NonRetriableError). step.Run returns it on later calls; return it (or
// any error wrapping it) from the function to fail the run with the step's
// error, or handle it and carry on.
type StepError struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
	raw     json.RawMessage
}

func (e *StepError) Error() string {
	if e.Name == "" || e.Name == "Error" {
		return e.Message
	}
	return e.Name + ": " + e.Message
}

// NewStepError reads a stored step error ({"name","message",...}).
func NewStepError(raw json.RawMessage) *StepError {
	e := &StepError{raw: raw}
	if json.Unmarshal(raw, e) != nil || (e.Name == "" && e.Message == "") {
		e.Name, e.Message = "Error", string(raw)
	}
	return e
}

// errorBody is how an error travels: the shape the TS SDK serializes
// (name, message, stack, __serialized), so either SDK can read it.
type errorBody struct {
	Name       string `json:"name"`
	Message    string `json:"message"`
	Stack      string `json:"stack,omitempty"`
	Serialized bool   `json:"__serialized"`
}

// SerializeError is err as the protocol carries it. A StepError keeps the
// body it was stored with.
func SerializeError(err error) json.RawMessage {
	var se *StepError
	if errors.As(err, &se) && len(se.raw) > 0 {
		return se.raw
	}
	name := "Error"
	var nr *NonRetriableError
	var ra *RetryAtError
	switch {
	case errors.As(err, &nr):
		name = "NonRetriableError"
	case errors.As(err, &ra):
		name = "RetryAfterError"
	}
	b, _ := json.Marshal(errorBody{Name: name, Message: err.Error(), Serialized: true})
	return b
}

// retryOf reads how a failed attempt should be retried: never, or not before a time.
func retryOf(err error) (noRetry bool, at time.Time) {
	var nr *NonRetriableError
	if errors.As(err, &nr) {
		return true, time.Time{}
	}
	var ra *RetryAtError
	if errors.As(err, &ra) {
		return false, ra.At
	}
	return false, time.Time{}
}

// ErrorFromStep classifies a step's error for the step package: whether it
// may be retried and when.
func ErrorFromStep(err error) (body json.RawMessage, noRetry bool, at time.Time) {
	noRetry, at = retryOf(err)
	return SerializeError(err), noRetry, at
}
