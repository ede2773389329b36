package fsm

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// maxSleepMs bounds a sleep: longer ones fail the run (as the official
// server does beyond a year).
const maxSleepMs = 366 * 24 * 60 * 60 * 1000

// sleepUntil computes when a Sleep op ends. The SDK puts the duration in the
// op name: a time string ("30s", "1w2d") or an ISO date. opts.duration is
// accepted too. A date in the past ends the sleep at once.
func sleepUntil(at int64, op Op) (int64, error) {
	spec := op.Name
	if d := planOpt(op.Opts, "duration"); d != "" {
		spec = d
	}
	if len(spec) >= 10 {
		if ts, err := time.Parse(time.RFC3339Nano, spec); err == nil {
			until := ts.UnixMilli()
			if until-at > maxSleepMs {
				return 0, fmt.Errorf("sleep until %s is more than a year away", spec)
			}
			return max(until, at), nil
		}
	}
	ms, err := ParseDurationMs(spec)
	if err != nil {
		return 0, fmt.Errorf("sleep %q: %w", spec, err)
	}
	if ms > maxSleepMs {
		return 0, fmt.Errorf("sleep %q is longer than a year", spec)
	}
	return at + ms, nil
}

// ParseDurationMs parses an SDK time string: a sequence of <number><unit>
// with units w, d, h, m, s, ms, us, ns. Fractions round up to whole ms.
func ParseDurationMs(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var total float64
	for len(s) > 0 {
		i := 0
		for i < len(s) && (s[i] == '.' || (s[i] >= '0' && s[i] <= '9')) {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("expected a number at %q", s)
		}
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil {
			return 0, err
		}
		s = s[i:]
		j := 0
		for j < len(s) && (s[j] < '0' || s[j] > '9') && s[j] != '.' {
			j++
		}
		unit := s[:j]
		s = s[j:]
		var ms float64
		switch unit {
		case "w":
			ms = 7 * 24 * 3600e3
		case "d":
			ms = 24 * 3600e3
		case "h":
			ms = 3600e3
		case "m":
			ms = 60e3
		case "s":
			ms = 1e3
		case "ms":
			ms = 1
		case "us", "µs":
			ms = 1e-3
		case "ns":
			ms = 1e-6
		default:
			return 0, fmt.Errorf("unknown unit %q", unit)
		}
		total += n * ms
	}
	if total > 1<<53 || total != total {
		return 0, fmt.Errorf("duration out of range")
	}
	out := int64(total)
	if float64(out) < total {
		out++
	}
	return out, nil
}
