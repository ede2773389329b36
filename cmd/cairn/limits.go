package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/server"
)

// byteSize is a flag of a number of bytes: 1048576, 1MiB, 512KiB, 4MB.
type byteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1}, {"", 1},
}

func (b *byteSize) String() string { return fsm.SizeText(int64(*b)) }

func (b *byteSize) Set(v string) error {
	v = strings.TrimSpace(v)
	for _, u := range sizeUnits {
		if !strings.HasSuffix(v, u.suffix) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), 10, 64)
		if err != nil || n < 0 || n > (1<<40)/u.mult {
			return fmt.Errorf("%q is not a size: use bytes, or a number with KiB, MiB or GiB (or KB, MB, GB)", v)
		}
		*b = byteSize(n * u.mult)
		return nil
	}
	return fmt.Errorf("%q is not a size", v)
}

// sizeFlag defines a byteSize flag whose default comes from env when set.
func sizeFlag(fs *flag.FlagSet, name, envName string, def int64, usage string) (*byteSize, error) {
	b := byteSize(def)
	if v, ok := os.LookupEnv(envName); ok {
		if err := b.Set(v); err != nil {
			return nil, fmt.Errorf("%s: %w", envName, err)
		}
	}
	fs.Var(&b, name, usage+" (env "+envName+")")
	return &b, nil
}

// limitFlags defines the flags of the limits on runs and inputs, and returns
// what puts their values into a server config.
func limitFlags(fs *flag.FlagSet) (func(*server.Config) error, error) {
	steps := fs.Int("max-steps", envInt("CAIRN_MAX_STEPS", fsm.DefaultStepsPerRun),
		"steps a run may memoize; one more fails it with InngestErrFunctionOverflowed; 0: no limit (env CAIRN_MAX_STEPS)")
	var sizes [4]*byteSize
	for i, f := range []struct {
		name, env string
		def       int64
		usage     string
	}{
		{"max-step-output", "CAIRN_MAX_STEP_OUTPUT", fsm.DefaultStepOutputBytes,
			"largest step output, run result or signal data (a `size`: bytes, KiB, MiB, GiB); a larger step fails with OutputTooLarge; 0: no limit"},
		{"max-run-state", "CAIRN_MAX_RUN_STATE", fsm.DefaultRunStateBytes,
			"largest run state, its events and step outputs (a `size`); past it the run fails with InngestErrStateOverflowed; 0: no limit"},
		{"max-event-size", "CAIRN_MAX_EVENT_SIZE", fsm.DefaultEventBytes, "largest event (a `size`); a larger one is refused with 413"},
		{"max-request-size", "CAIRN_MAX_REQUEST_SIZE", fsm.DefaultRequestBytes, "largest request body (a `size`); a larger one is refused with 413"},
	} {
		var err error
		if sizes[i], err = sizeFlag(fs, f.name, f.env, f.def, f.usage); err != nil {
			return nil, err
		}
	}
	return func(cfg *server.Config) error {
		if *sizes[2] == 0 || *sizes[3] == 0 {
			return fmt.Errorf("--max-event-size and --max-request-size cannot be 0")
		}
		cfg.Limits = &fsm.Limits{StepOutputBytes: int64(*sizes[0]), RunStateBytes: int64(*sizes[1]), StepsPerRun: max(*steps, 0)}
		cfg.MaxEventBytes, cfg.MaxRequestBytes = int(*sizes[2]), int64(*sizes[3])
		return nil
	}, nil
}
