package raftnode

import (
	"errors"
	"fmt"
	"github.com/cairn-dev/cairn/internal/durable"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cairn-dev/cairn/fsm"
)

// Checkpoints are copies of the projection kept at past log indexes, so that
// the state at an index far behind Raft's two snapshots is rebuilt from the
// nearest checkpoint below it rather than from index 1 (package
// pointintime). One is taken with each Raft snapshot, when the projection
// has just been flushed: Pebble hard-links its sstables, so taking one costs
// a few file links, and keeping one costs the files compactions have since
// replaced. Past Keep, the checkpoint whose neighbours are closest goes, so
// those kept spread over the whole history.
type CheckpointConfig struct {
	// Keep is how many checkpoints are kept (0: DefaultCheckpoints; -1:
	// none are taken).
	Keep int
}

// DefaultCheckpoints is how many checkpoints a node keeps by default.
const DefaultCheckpoints = 16

const (
	checkpointsDirName = "checkpoints"
	checkpointTmp      = ".tmp"
)

// checkpoints is a node's directory of checkpoints, one subdirectory each,
// named by its index.
type checkpoints struct {
	dir  string
	keep int
	log  *slog.Logger

	// mu is held for reading while a checkpoint is copied, so that thinning
	// never removes one under a copy.
	mu      sync.RWMutex
	indexes []uint64 // ascending
}

// openCheckpoints lists dir's checkpoints and removes what a crash left
// half written; nil when checkpoints are off.
func openCheckpoints(dir string, cfg CheckpointConfig, lg *slog.Logger) (*checkpoints, error) {
	if cfg.Keep < 0 {
		return nil, nil
	}
	if cfg.Keep == 0 {
		cfg.Keep = DefaultCheckpoints
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("raftnode: checkpoints: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("raftnode: checkpoints: %w", err)
	}
	c := &checkpoints{dir: dir, keep: max(cfg.Keep, 2), log: lg}
	for _, e := range ents {
		i, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil || !e.IsDir() {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return nil, fmt.Errorf("raftnode: checkpoints: %w", err)
			}
			continue
		}
		c.indexes = append(c.indexes, i)
	}
	slices.Sort(c.indexes)
	return c, nil
}

func (c *checkpoints) path(index uint64) string {
	return filepath.Join(c.dir, fmt.Sprintf("%020d", index))
}

// take checkpoints the projection (called with each Raft snapshot, on the
// goroutine that applies entries, so the projection does not move).
func (c *checkpoints) take(f *fsm.FSM) {
	applied, _ := f.Applied()
	c.mu.RLock()
	have := slices.Contains(c.indexes, applied)
	c.mu.RUnlock()
	if have || applied == 0 {
		return
	}
	tmp := c.path(applied) + checkpointTmp
	os.RemoveAll(tmp)
	index, err := f.Checkpoint(tmp)
	if err == nil {
		if err = os.Rename(tmp, c.path(index)); err == nil {
			err = durable.SyncDir(c.dir)
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		c.log.Warn("checkpoint of the projection failed", "index", applied, "err", err)
		return
	}
	c.mu.Lock()
	c.indexes = append(c.indexes, index)
	slices.Sort(c.indexes)
	var drop []uint64
	for len(c.indexes) > c.keep {
		k := closestNeighbours(c.indexes)
		drop = append(drop, c.indexes[k])
		c.indexes = slices.Delete(c.indexes, k, k+1)
	}
	c.mu.Unlock()
	for _, i := range drop {
		if err := os.RemoveAll(c.path(i)); err != nil {
			c.log.Warn("removing a checkpoint", "index", i, "err", err)
		}
	}
	c.log.Debug("checkpoint of the projection", "index", index, "kept", len(c.indexes))
}

// closestNeighbours is the position of the interior checkpoint whose
// removal leaves the smallest gap (never the first or the last).
func closestNeighbours(idx []uint64) int {
	best, gap := 1, ^uint64(0)
	for k := 1; k < len(idx)-1; k++ {
		if g := idx[k+1] - idx[k-1]; g < gap {
			best, gap = k, g
		}
	}
	return best
}

// Indexes lists the indexes of the kept checkpoints, ascending.
func (c *checkpoints) Indexes() []uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.indexes)
}

// errNoCheckpoint: the checkpoint was thinned away since it was listed.
var errNoCheckpoint = errors.New("no such checkpoint")

// CopyTo makes dir (new) a private copy of the checkpoint at index that a
// projection may be opened on: sstables are immutable, so they are linked;
// the rest (manifest, options) is copied, since Pebble rewrites it.
func (c *checkpoints) CopyTo(index uint64, dir string) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !slices.Contains(c.indexes, index) {
		return fmt.Errorf("raftnode: checkpoint %d: %w", index, errNoCheckpoint)
	}
	src := c.path(index)
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		from, to := filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())
		if strings.HasSuffix(e.Name(), ".sst") {
			if err := os.Link(from, to); err == nil {
				continue
			}
		}
		if err := copyFile(from, to); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
