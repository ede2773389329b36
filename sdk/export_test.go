package sdk

import "time"

// SetClock sets the clock signatures are checked and made with, so tests
// can replay captured signed requests.
func SetClock(c *Client, now func() time.Time) { c.now = now }
