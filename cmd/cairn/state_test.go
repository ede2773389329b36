package main

import (
	"flag"
	"io"
	"testing"
)

// cairn run ID --at N: flags after the run id are parsed too.
func TestRunAtFlagAfterTheID(t *testing.T) {
	for _, args := range [][]string{{"R1", "--at", "42"}, {"--at", "42", "R1"}, {"--at=42", "R1"}} {
		var at string
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		atFlag(fs, &at)
		if err := fs.Parse(flagsFirst(fs, args)); err != nil {
			t.Fatal(err)
		}
		if fs.NArg() != 1 || fs.Arg(0) != "R1" || at != "42" {
			t.Fatalf("%q: args %q, --at %q", args, fs.Args(), at)
		}
	}
}

func TestAtQuery(t *testing.T) {
	for at, want := range map[string]string{
		"":                     "",
		"42":                   "?at_index=42",
		"2026-01-02T15:04:05Z": "?at=2026-01-02T15%3A04%3A05Z",
		"-1":                   "?at=-1", // the server refuses it
	} {
		if got := atQuery(at); got != want {
			t.Errorf("atQuery(%q) = %q, want %q", at, got, want)
		}
	}
}
