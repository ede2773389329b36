package sdk

import "time"

// SetClock sets the clock signatures are checked and made with, so tests
// can replay captured signed requests.
func SetClock(c *Client, now func() time.Time) { c.now = now }

// SetRunIDs sets how durable endpoints name their runs.
func SetRunIDs(c *Client, next func() string) { c.newRunID = next }
