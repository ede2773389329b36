// Package errs holds the SDK's error types and how errors travel on the
// wire; package sdk exports the types, package step reads and writes them.
package errs

import (
	"encoding/json"
	"errors"
	"time"
)

// NonRetriableError marks an error that retrying cannot fix: a step or a
// function that returns it fails at once, without using its retries.
type NonRetriableError struct{ Err error }

func (e *NonRetriableError) Error() string { return e.Err.Error() }
func (e *NonRetriableError) Unwrap() error { return e.Err }

// RetryAtError asks for the next attempt no earlier than At.
type RetryAtError struct {
	Err error
	At  time.Time
}

func (e *RetryAtError) Error() string { return e.Err.Error() }
func (e *RetryAtError) Unwrap() error { return e.Err }

// StepError is a step that failed for good (all its attempts used, or a
// NonRetriableError). The step tool returns it on later calls; return it
// (or any error wrapping it) from the function to fail the run with the
// step's error, or handle it and carry on.
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

// FromStored reads a stored step error ({"name","message",...}).
func FromStored(raw json.RawMessage) *StepError {
	e := &StepError{raw: raw}
	if json.Unmarshal(raw, e) != nil || (e.Name == "" && e.Message == "") {
		e.Name, e.Message = "Error", string(raw)
	}
	return e
}

// body is how an error travels: the shape the TS SDK serializes (name,
// message, stack, __serialized), so either SDK can read it.
type body struct {
	Name       string `json:"name"`
	Message    string `json:"message"`
	Stack      string `json:"stack,omitempty"`
	Serialized bool   `json:"__serialized"`
}

// Named is an error body with a given name.
func Named(name, message string) json.RawMessage {
	b, _ := json.Marshal(body{Name: name, Message: message, Serialized: true})
	return b
}

// Serialize is err as the protocol carries it. A StepError keeps the body
// it was stored with.
func Serialize(err error) json.RawMessage {
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
	return Named(name, err.Error())
}

// Retry reads how a failed attempt should be retried: never, or not
// before a time (zero: whenever the server's backoff says).
func Retry(err error) (noRetry bool, at time.Time) {
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
