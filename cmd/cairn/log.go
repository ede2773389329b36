package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/cairn-dev/cairn/api"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// followInterval is how often cairn log --follow asks for new records.
const followInterval = 500 * time.Millisecond

// logBodyWidth bounds the body printed on a human-readable log line.
const logBodyWidth = 100

// logPage is an answer of GET /v1/log.
type logPage struct {
	Data      []api.LogRecord `json:"data"`
	NextIndex uint64          `json:"next_index"`
}

// logRecordJSON is a record as cairn log --json prints it: its time as
// RFC 3339 (the API's unix ms), the rest as the API gives it.
type logRecordJSON struct {
	api.LogRecord
	Time string `json:"time"`
}

// cmdLog prints the committed records of the log, archived ones included,
// in log order: one line per record, or one JSON object per line (--json).
func cmdLog(args []string) error {
	var from uint64
	var limit int
	var follow, asJSON bool
	_, base, err := clientFlags("log", "[--from-index N] [--limit N] [--follow] [--json]", args, func(fs *flag.FlagSet) {
		fs.Uint64Var(&from, "from-index", 0, "first log index (0: the first still readable)")
		fs.IntVar(&limit, "limit", 100, "log entries per request (1..1000); without --follow, one page")
		fs.BoolVar(&follow, "follow", false, "keep printing new records until interrupted")
		fs.BoolVar(&asJSON, "json", false, "print one JSON object per record")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	enc := json.NewEncoder(stdout)
	for {
		q := url.Values{"limit": {strconv.Itoa(limit)}}
		if from > 0 {
			q.Set("from_index", strconv.FormatUint(from, 10))
		}
		var page logPage
		if err := call(http.MethodGet, base+"/v1/log?"+q.Encode(), nil, &page); err != nil {
			return err
		}
		for _, r := range page.Data {
			if asJSON {
				// The record's time as RFC 3339; its body as recorded.
				if err := enc.Encode(logRecordJSON{r, time.UnixMilli(r.Time).UTC().Format(rfc3339Millis)}); err != nil {
					return err
				}
				continue
			}
			body := string(r.Body)
			if len(body) > logBodyWidth {
				body = body[:logBodyWidth-3] + "..."
			}
			fmt.Fprintf(stdout, "%d.%d\t%s\t%s\t%s\n", r.Index, r.Position, time.UnixMilli(r.Time).UTC().Format(time.RFC3339), r.Kind, body)
		}
		moved := page.NextIndex > from
		from = page.NextIndex
		if !follow {
			if len(page.Data) > 0 && !asJSON {
				fmt.Fprintf(os.Stderr, "\nnext page: cairn log --from-index %d\n", from)
			}
			return nil
		}
		if moved {
			continue // more may be waiting: ask again at once
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followInterval):
		}
	}
}
