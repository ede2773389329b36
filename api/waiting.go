package api

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/fsm"
)

// waitingTime finds the unix-ms time in a run's stored Waiting text
// ("throttled until 1796061505567 (key ...)"): Apply stores what it
// computed, the API shows it as a time.
var waitingTime = regexp.MustCompile(` until (\d{12,})`)

// waiting says why a run is not moving, for people and for clients: text
// with its time as RFC 3339, the same text without the time (reason), and
// the time apart (unix ms, 0: none), so that each client renders it its
// own way ("in 20 s"). A run held back by flow control says so in its
// stored Waiting (a debounced or batching run until its first call is
// due); a running run with nothing due but a sleep, a wait or an
// invoke waits for the earliest of them (a run timeout is not a wait), and
// step is that step's id.
func waiting(r *fsm.Run, calls []fsm.Call) (text, reason string, until int64, step string) {
	if r.Done() {
		return "", "", 0, ""
	}
	if r.Waiting != "" {
		reason = r.Waiting
		switch {
		case r.Waiting == fsm.WaitingDebounce || r.Waiting == fsm.WaitingBatch:
			// The run starts when its first call is due: the debounce
			// period or the batch timeout.
			reason = map[string]string{fsm.WaitingDebounce: "debounced", fsm.WaitingBatch: "batching events"}[r.Waiting]
			for i := range calls {
				if c := &calls[i]; c.Type == fsm.CallHTTP && (until == 0 || c.Due < until) {
					until = c.Due
				}
			}
		default:
			if m := waitingTime.FindStringSubmatchIndex(r.Waiting); m != nil {
				until, _ = strconv.ParseInt(r.Waiting[m[2]:m[3]], 10, 64)
				reason = strings.TrimSpace(r.Waiting[:m[0]] + r.Waiting[m[1]:])
			}
		}
	} else {
		var first *fsm.Call
		for i := range calls {
			c := &calls[i]
			switch c.Type {
			case fsm.CallHTTP:
				return "", "", 0, "" // a step is due or running: the run is not waiting
			case fsm.CallTimeout:
				continue
			}
			if first == nil || c.Due < first.Due {
				first = c
			}
		}
		if first == nil {
			return "", "", 0, ""
		}
		reason, until, step = waitReason(first), first.Due, first.ID
	}
	text = reason
	if until > 0 {
		head, tail, _ := strings.Cut(reason, " (")
		text = head + " until " + time.UnixMilli(until).UTC().Format(time.RFC3339)
		if tail != "" {
			text += " (" + tail
		}
	}
	return text, reason, until, step
}

// waitReason says what a timer call waits for.
func waitReason(c *fsm.Call) string {
	switch c.Type {
	case fsm.CallSleep:
		return "sleeping"
	case fsm.CallWait:
		return "waiting for event " + c.Event
	case fsm.CallSignal:
		return "waiting for signal " + c.Signal
	case fsm.CallInvoke:
		return "waiting for an invoked function"
	}
	return "waiting (" + c.Type + ")"
}
