package fsm

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
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
// with units w, d, h, m, s, ms, us, ns, where a number may have a decimal
// fraction. Fractions of a ms round up. Apply calls it (sleeps, wait
// timeouts), so the sum is exact, in integers: a float loop may round
// differently on another CPU (Go may fuse n*unit+total into one FMA on
// arm64, not on amd64), and "0.27m" was 16201 ms.
func ParseDurationMs(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty duration")
	}
	total := new(big.Rat) // ns
	for len(s) > 0 {
		i := 0
		for i < len(s) && (s[i] == '.' || (s[i] >= '0' && s[i] <= '9')) {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("expected a number at %q", s)
		}
		n, err := decimal(s[:i])
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
		var ns int64
		switch unit {
		case "w":
			ns = 7 * 24 * 3600e9
		case "d":
			ns = 24 * 3600e9
		case "h":
			ns = 3600e9
		case "m":
			ns = 60e9
		case "s":
			ns = 1e9
		case "ms":
			ns = 1e6
		case "us", "µs":
			ns = 1e3
		case "ns":
			ns = 1
		default:
			return 0, fmt.Errorf("unknown unit %q", unit)
		}
		total.Add(total, n.Mul(n, new(big.Rat).SetInt64(ns)))
	}
	// ms = ceil(ns / 1e6)
	q, r := new(big.Int).QuoRem(total.Num(), new(big.Int).Mul(total.Denom(), big.NewInt(1e6)), new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if q.Cmp(big.NewInt(1<<53)) > 0 {
		return 0, fmt.Errorf("duration out of range")
	}
	return q.Int64(), nil
}

// decimal reads digits with at most one '.' ("5", "1.5", ".5", "5.") as
// an exact fraction.
func decimal(s string) (*big.Rat, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole+frac == "" || strings.Contains(frac, ".") {
		return nil, fmt.Errorf("bad number %q", s)
	}
	num, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok {
		return nil, fmt.Errorf("bad number %q", s)
	}
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	return new(big.Rat).SetFrac(num, den), nil
}
