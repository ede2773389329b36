package main

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
)

// flagsCmd is the hidden command completion scripts ask for a command's
// flags ("cairn __flags runs"): the flags come from the command's own flag
// set, so completion never drifts from what a command accepts.
const flagsCmd = "__flags"

// listFlags makes clientFlags and runNode print their flag set's flags
// and stop (flag.ErrHelp) instead of running the command.
var listFlags bool

// printFlags prints a flag set's flags, one "--name" a line, and returns
// flag.ErrHelp, so the command stops there.
func printFlags(fs *flag.FlagSet) error {
	fs.VisitAll(func(f *flag.Flag) { fmt.Fprintln(stdout, "--"+f.Name) })
	return flag.ErrHelp
}

func cmdFlags(args []string) error {
	if len(args) != 1 || args[0] == flagsCmd || args[0] == "completion" || args[0] == "certs" {
		return nil // nothing to complete
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return nil
	}
	listFlags = true
	defer func() { listFlags = false }()
	return cmd(nil)
}

// subcommands are the words a command takes first.
var subcommands = map[string][]string{
	"replay":     {"status", "cancel"},
	"apps":       {"rm"},
	"cluster":    {"status", "join", "remove"},
	"completion": {"bash", "zsh", "fish"},
}

func commandNames() []string {
	var out []string
	for name := range commands {
		if name != flagsCmd {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// cmdCompletion prints a completion script for bash, zsh or fish. It
// completes command names, subcommands, and flags (asked of cairn itself
// with "cairn __flags CMD", so they are always the binary's own).
func cmdCompletion(args []string) error {
	if len(args) != 1 {
		return errors.New("completion needs a shell: bash, zsh or fish (e.g. source <(cairn completion bash))")
	}
	names := strings.Join(commandNames(), " ")
	var cases strings.Builder
	for _, cmd := range []string{"replay", "apps", "cluster", "completion"} {
		fmt.Fprintf(&cases, "    %s) words=%q ;;\n", cmd, strings.Join(subcommands[cmd], " "))
	}
	switch args[0] {
	case "bash":
		fmt.Fprintf(stdout, `# cairn completion for bash: source <(cairn completion bash)
_cairn() {
  local cur=${COMP_WORDS[COMP_CWORD]} words=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W %q -- "$cur"))
    return
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(cairn %s "${COMP_WORDS[1]}" 2>/dev/null)" -- "$cur"))
    return
  fi
  if [ "$COMP_CWORD" -eq 2 ]; then
    case ${COMP_WORDS[1]} in
%s    esac
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _cairn cairn
`, names, flagsCmd, cases.String())
	case "zsh":
		fmt.Fprintf(stdout, `#compdef cairn
# cairn completion for zsh: source <(cairn completion zsh)
_cairn() {
  local words_=""
  if (( CURRENT == 2 )); then
    compadd -- %s
    return
  fi
  if [[ $PREFIX == -* ]]; then
    compadd -- ${(f)"$(cairn %s $words[2] 2>/dev/null)"}
    return
  fi
  if (( CURRENT == 3 )); then
    case $words[2] in
%s    esac
    [[ -n $words_ ]] && { compadd -- ${=words_}; return }
  fi
  _files
}
compdef _cairn cairn
`, names, flagsCmd, strings.ReplaceAll(cases.String(), "words=", "words_="))
	case "fish":
		var b strings.Builder
		b.WriteString("# cairn completion for fish: cairn completion fish | source\ncomplete -c cairn -e\n")
		fmt.Fprintf(&b, "complete -c cairn -n __fish_use_subcommand -f -a %q\n", names)
		for _, cmd := range []string{"replay", "apps", "cluster", "completion"} {
			fmt.Fprintf(&b, "complete -c cairn -n '__fish_seen_subcommand_from %s; and test (count (commandline -opc)) -eq 2' -f -a %q\n",
				cmd, strings.Join(subcommands[cmd], " "))
		}
		fmt.Fprintf(&b, "complete -c cairn -n 'not __fish_use_subcommand; and string match -q -- \"-*\" (commandline -ct)' -f -a '(cairn %s (commandline -opc)[2] 2>/dev/null)'\n", flagsCmd)
		fmt.Fprint(stdout, b.String())
	default:
		return fmt.Errorf("completion: unknown shell %q (bash, zsh or fish)", args[0])
	}
	return nil
}

// handleFlagList prints a node command's flags for completion.
func handleFlagList(fs *flag.FlagSet) error {
	_, err := handleHelp(printFlags(fs))
	return err
}
