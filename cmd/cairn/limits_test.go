package main

import (
	"flag"
	"io"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/server"
)

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "4MiB": 4 << 20, "512 KiB": 512 << 10,
		"4MB": 4_000_000, "2GiB": 2 << 30, "10B": 10} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("%q: %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "-1", "4 parsecs", "1.5MiB", "MiB", "9999GiB"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("%q parsed as %d", in, b)
		}
	}
}

func TestLimitFlags(t *testing.T) {
	t.Setenv("CAIRN_MAX_RUN_STATE", "64MiB")
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	set, err := limitFlags(fs)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--max-step-output", "1MiB", "--max-steps", "50", "--max-event-size", "256KiB"}); err != nil {
		t.Fatal(err)
	}
	var cfg server.Config
	if err := set(&cfg); err != nil {
		t.Fatal(err)
	}
	want := fsm.Limits{StepOutputBytes: 1 << 20, RunStateBytes: 64 << 20, StepsPerRun: 50}
	if *cfg.Limits != want || cfg.MaxEventBytes != 256<<10 || cfg.MaxRequestBytes != fsm.DefaultRequestBytes {
		t.Fatalf("limits %+v, event %d, request %d", *cfg.Limits, cfg.MaxEventBytes, cfg.MaxRequestBytes)
	}
}
