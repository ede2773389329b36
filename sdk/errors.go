package sdk

import (
	"time"

	"github.com/cairn-dev/cairn/sdk/internal/errs"
)

// NonRetriableError marks an error that retrying cannot fix: a step or a
// function that returns it fails at once, without using its retries.
type NonRetriableError = errs.NonRetriableError

// RetryAtError asks for the next attempt no earlier than At.
type RetryAtError = errs.RetryAtError

// StepError is a step that failed for good (all its attempts used, or a
// NonRetriableError). step.Run returns it on later calls; return it (or any
// error wrapping it) from the function to fail the run with the step's
// error, or handle it and carry on. Name and Message are the error's.
type StepError = errs.StepError

// NonRetriable wraps err so it is not retried.
func NonRetriable(err error) error { return &NonRetriableError{Err: err} }

// RetryAt wraps err so the next attempt waits until at.
func RetryAt(err error, at time.Time) error { return &RetryAtError{Err: err, At: at} }

// RetryAfter wraps err so the next attempt waits d.
func RetryAfter(err error, d time.Duration) error { return RetryAt(err, time.Now().Add(d)) }
