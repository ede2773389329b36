package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// cmdRerun: cairn rerun RUN_ID [--from-step S].
func cmdRerun(args []string) error {
	var step string
	fs, base, err := clientFlags("rerun", "RUN_ID [--from-step STEP]", args, func(fs *flag.FlagSet) {
		fs.StringVar(&step, "from-step", "", "keep the results of the steps before STEP (its id as written in code, hashed id or name) and run again from it")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("rerun needs a run id")
	}
	body := map[string]string{}
	if step != "" {
		body["from_step"] = step
	}
	var out json.RawMessage
	if err := call(http.MethodPost, base+"/v1/runs/"+url.PathEscape(fs.Arg(0))+"/rerun", body, &out); err != nil {
		return err
	}
	return printJSON(out)
}

// replayProgress is GET /v1/replays/:id.
type replayProgress struct {
	Data struct {
		ID      string         `json:"replay_id"`
		Status  string         `json:"status"`
		Runs    int            `json:"runs"`
		Started int            `json:"started"`
		Reruns  map[string]int `json:"reruns"`
		Skipped int            `json:"skipped"`
	} `json:"data"`
}

// cmdReplay: cairn replay --function F --from T [--to T] [--status S,...]
// starts a bulk replay and follows it with a progress bar; cairn replay
// status|cancel ID.
func cmdReplay(args []string) error {
	var fn, from, to, statuses string
	var noWait bool
	fs, base, err := clientFlags("replay", "--function FN --from T [--to T] [--status failed,cancelled] | status ID | cancel ID", args, func(fs *flag.FlagSet) {
		fs.StringVar(&fn, "function", "", "the function whose runs to replay (as cairn apps lists it, or its id in the app)")
		fs.StringVar(&from, "from", "", "replay runs created at or after this time (RFC 3339 or unix ms)")
		fs.StringVar(&to, "to", "", "... and at or before this time (default now)")
		fs.StringVar(&statuses, "status", "failed,cancelled", "the statuses of the runs to replay, comma-separated")
		fs.BoolVar(&noWait, "no-wait", false, "print the replay's id and return instead of following it")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	switch fs.Arg(0) {
	case "status", "cancel":
		if fs.NArg() != 2 {
			fs.Usage()
			return fmt.Errorf("replay %s needs a replay id", fs.Arg(0))
		}
		u := base + "/v1/replays/" + url.PathEscape(fs.Arg(1))
		var out json.RawMessage
		if fs.Arg(0) == "cancel" {
			err = call(http.MethodPost, u+"/cancel", nil, &out)
		} else {
			err = call(http.MethodGet, u, nil, &out)
		}
		if err != nil {
			return err
		}
		return printJSON(out)
	case "":
	default:
		fs.Usage()
		return fmt.Errorf("replay: unknown subcommand %q", fs.Arg(0))
	}
	if fn == "" || from == "" {
		fs.Usage()
		return errors.New("replay needs --function and --from")
	}
	body := map[string]any{"function_id": fn, "from": from, "statuses": strings.Split(statuses, ",")}
	if to != "" {
		body["to"] = to
	}
	var started struct {
		Data struct {
			ID   string `json:"replay_id"`
			Runs int    `json:"runs"`
		} `json:"data"`
	}
	if err := call(http.MethodPost, base+"/v1/replays", body, &started); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replay %s: %d runs\n", started.Data.ID, started.Data.Runs)
	if noWait || started.Data.Runs == 0 {
		return nil
	}
	for {
		var p replayProgress
		if err := call(http.MethodGet, base+"/v1/replays/"+url.PathEscape(started.Data.ID), nil, &p); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "\r%s", progressLine(p))
		if p.Data.Status != "running" && finished(p) {
			fmt.Fprintln(stderr)
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// finished reports whether every rerun a replay started has ended.
func finished(p replayProgress) bool {
	return p.Data.Reruns["running"] == 0
}

// progressLine draws a replay's progress: a bar of reruns started, and the
// reruns by status.
func progressLine(p replayProgress) string {
	d := p.Data
	return fmt.Sprintf("%s %d/%d started  running %d  completed %d  failed %d  cancelled %d  skipped %d  (%s) ",
		bar(d.Started, d.Runs), d.Started, d.Runs, d.Reruns["running"], d.Reruns["completed"], d.Reruns["failed"], d.Reruns["cancelled"], d.Skipped, d.Status)
}

// bar draws done of total as a progress bar: "[#####.....]".
func bar(done, total int) string {
	const width = 30
	n := 0
	if total > 0 {
		n = min(done, total) * width / total
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
