// Package cronschedule parses cron triggers as the SDK sends them: five
// fields or a descriptor (@hourly), optionally prefixed by a time zone,
// "TZ=Europe/Paris 0 3 * * *".
package cronschedule

import (
	"fmt"
	"time"
	_ "time/tzdata" // time zones without relying on the host's zoneinfo

	"github.com/robfig/cron/v3"
)

// Parse checks a cron spec and returns its schedule.
func Parse(spec string) (cron.Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("cron %q: %w", spec, err)
	}
	return s, nil
}

// Next returns the first scheduled time strictly after t.
func Next(spec string, t time.Time) (time.Time, error) {
	s, err := Parse(spec)
	if err != nil {
		return time.Time{}, err
	}
	return s.Next(t), nil
}
