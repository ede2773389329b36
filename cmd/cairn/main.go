// Command cairn runs a Cairn node and talks to one.
//
//	cairn dev      one node with an embedded data dir (the SDK's dev server)
//	cairn start    a node of a cluster
//	cairn send     send an event
//	cairn runs     list runs (or the runs of an event)
//	cairn history  show a run's audit trail
//	cairn log      the log's records, archived ones included
//	cairn cancel   cancel a run
//	cairn sync     ask apps to re-register
//	cairn certs    make a cluster CA and node certificates
package main

import (
	"fmt"
	"os"
)

const usage = `cairn: durable execution on an append-only, Raft-replicated log.

Usage:
  cairn dev     [flags]            run one node with an embedded data dir on :8288
  cairn start   [flags]            run a node of a (possibly multi-node) cluster
  cairn send    NAME [DATA_JSON]   send an event; prints its id
  cairn runs    [--event ID]       list recent runs, or the runs of an event
  cairn run     RUN_ID [--at N|TIME]   show one run (as it was at a log index or time)
  cairn state   [--at N|TIME]      the whole state's log index, digest and runs by status
  cairn history RUN_ID [--json]    show a run's full history (audit trail)
  cairn cancel  RUN_ID             cancel a run
  cairn cancel  --function FN [--from T] [--to T]   cancel a function's runs started in a range
  cairn rerun   RUN_ID [--from-step S]   run a run's function again with its events (from a step)
  cairn replay  --function FN --from T [--to T] [--status failed,cancelled]   rerun a window of runs
  cairn replay  status|cancel REPLAY_ID   a bulk replay's progress; stop it
  cairn signal  NAME [DATA_JSON]   resume the run waiting for a signal
  cairn cluster status|join|remove  members, leader, indexes; add or remove a voter
  cairn sync    [URL]              ask apps (or one app URL) to re-register
  cairn certs   --dir DIR --nodes n1,n2,n3   make a cluster CA and node certificates for TLS
  cairn apps    [rm APP_ID|URL]    registered apps and synced URLs; remove one
  cairn events  [--name N] [--from T] [--to T]   stored events, newest first
  cairn event   [--replay] EVENT_ID   one stored event; --replay sends it again
  cairn log     [--from-index N] [--limit N] [--follow] [--json]   the log's records, archived ones included

Client commands talk to --url (env CAIRN_URL); against a cairn start node
they need --signing-key (env CAIRN_SIGNING_KEY). Flags may follow the
arguments. What they change names them in the records: "cli", or
$CAIRN_ACTOR (letters, digits, ._@+:/-), with the key's id, e.g.
"cli (key:3fa2...)" in a run's history.

Run "cairn COMMAND --help" for a command's flags. Every flag can also be set
with an environment variable, shown in the flag's help.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "dev":
		err = runNode(cmd, args)
	case "start":
		err = runNode(cmd, args)
	case "send":
		err = cmdSend(args)
	case "runs":
		err = cmdRuns(args)
	case "run":
		err = cmdRun(args)
	case "state":
		err = cmdState(args)
	case "history":
		err = cmdHistory(args)
	case "cancel":
		err = cmdCancel(args)
	case "sync":
		err = cmdSync(args)
	case "signal":
		err = cmdSignal(args)
	case "cluster":
		err = cmdCluster(args)
	case "apps":
		err = cmdApps(args)
	case "events":
		err = cmdEvents(args)
	case "event":
		err = cmdEvent(args)
	case "rerun":
		err = cmdRerun(args)
	case "replay":
		err = cmdReplay(args)
	case "log":
		err = cmdLog(args)
	case "certs":
		err = cmdCerts(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "cairn: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		os.Exit(1)
	}
}
