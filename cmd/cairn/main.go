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
//	cairn functions  list registered functions
//	cairn completion  print a shell completion script
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
  cairn runs    [--function F] [--status S] [--since T] [--event ID]   recent runs, filtered
  cairn run     RUN_ID [--at N|TIME] [--json]   show one run: steps by name, what it waits for
  cairn state   [--at N|TIME]      the whole state's log index, digest and runs by status
  cairn history RUN_ID [--json]    show a run's full history (audit trail)
  cairn cancel  RUN_ID             cancel a run
  cairn cancel  --function FN [--from T] [--to T]   cancel a function's runs started in a range
  cairn rerun   RUN_ID [--from-step S]   run a run's function again with its events (from a step)
  cairn replay  --function FN --from T [--to T] [--status failed,cancelled]   rerun a window of runs
  cairn replay  status|cancel REPLAY_ID   a bulk replay's progress; stop it
  cairn signal  NAME [DATA_JSON]   resume the run waiting for a signal
  cairn cluster status|join|remove  members, leader, indexes; add or remove a voter
  cairn sync    [URL]              ask every known app (or one app URL) to re-register; fails if one does not
  cairn certs   --dir DIR --nodes n1,n2,n3   make a cluster CA and node certificates for TLS
  cairn apps    [rm APP_ID|URL]    registered apps and synced URLs; remove one
  cairn functions [--json]         registered functions: triggers, retries, flow control
  cairn events  [--name N] [--from T] [--to T]   stored events, newest first
  cairn event   [--replay] EVENT_ID   one stored event; --replay sends it again
  cairn log     [--from-index N] [--limit N] [--follow] [--json]   the log's records, archived ones included
  cairn completion bash|zsh|fish  a shell completion script (e.g. source <(cairn completion bash))

Client commands talk to --url (env CAIRN_URL); against a cairn start node
they need --signing-key (env CAIRN_SIGNING_KEY). Flags may follow the
arguments. Tables say times as "3 min ago"; --json prints them as RFC
3339. A command that fails exits non-zero. A function may be named by the
id its app gave it when that names one function. What they change names
them in the records: "cli", or $CAIRN_ACTOR (letters, digits, ._@+:/-),
with the key's id, e.g. "cli (key:3fa2...)" in a run's history.

cairn dev takes ports 8288 (HTTP: --port) and 8289 (Raft: --raft-addr), and
looks for apps on localhost's common ports (--no-discovery to stop).

Run "cairn COMMAND --help" for a command's flags. Every flag can also be set
with an environment variable, shown in the flag's help.
`

// commands are cairn's commands, by name (completion lists them too).
var commands = map[string]func([]string) error{
	"dev":       func(a []string) error { return runNode("dev", a) },
	"start":     func(a []string) error { return runNode("start", a) },
	"send":      cmdSend,
	"runs":      cmdRuns,
	"run":       cmdRun,
	"state":     cmdState,
	"history":   cmdHistory,
	"cancel":    cmdCancel,
	"sync":      cmdSync,
	"signal":    cmdSignal,
	"cluster":   cmdCluster,
	"apps":      cmdApps,
	"functions": cmdFunctions,
	"events":    cmdEvents,
	"event":     cmdEvent,
	"rerun":     cmdRerun,
	"replay":    cmdReplay,
	"log":       cmdLog,
	"certs":     cmdCerts,
}

// init adds the commands that read the table itself.
func init() {
	commands["completion"] = cmdCompletion
	commands[flagsCmd] = cmdFlags
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	name, args := os.Args[1], os.Args[2:]
	switch name {
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "cairn: unknown command %q\n\n%s", name, usage)
		os.Exit(2)
	}
	if err := cmd(args); err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		os.Exit(1)
	}
}
