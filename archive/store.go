package archive

import (
	"errors"
	"fmt"
	"github.com/cairn-dev/cairn/internal/durable"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Store holds immutable named blobs: the segments and the manifest. It is
// the seam for an object store (S3 and the like offer exactly these four
// operations); Dir is the local implementation.
type Store interface {
	// Put durably stores data under a new name. A name is written once:
	// Put of an existing name fails with ErrExists and changes nothing.
	Put(name string, data []byte) error
	// Get returns the data stored under name, or an error wrapping
	// fs.ErrNotExist.
	Get(name string) ([]byte, error)
	// List returns every stored name, sorted.
	List() ([]string, error)
	// Delete removes name; deleting a missing name is not an error.
	Delete(name string) error
}

// ErrExists is returned by Put for a name already stored: segments are
// immutable, so writing one twice means two writers or a bug.
var ErrExists = errors.New("archive: name already stored")

// tempMarker is part of the name of a file Dir is still writing; List
// hides such files and NewDir removes the ones a crash left behind.
const tempMarker = ".tmp-"

// Dir is a Store on a local directory. Each Put writes a temporary file,
// fsyncs it, makes it read-only, links it under its final name (a link,
// unlike a rename, never replaces an existing file) and fsyncs the
// directory, so a name is either absent or whole after a crash.
type Dir struct{ path string }

var _ Store = (*Dir)(nil)

// NewDir opens (creating if needed) a directory store and removes
// temporary files an interrupted Put left behind.
func NewDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), tempMarker) {
			if err := os.Remove(filepath.Join(path, e.Name())); err != nil {
				return nil, fmt.Errorf("archive: remove leftover %s: %w", e.Name(), err)
			}
		}
	}
	return &Dir{path: path}, nil
}

// Path is the directory the store writes to.
func (d *Dir) Path() string { return d.path }

func (d *Dir) file(name string) (string, error) {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") || strings.Contains(name, tempMarker) {
		return "", fmt.Errorf("archive: bad name %q", name)
	}
	return filepath.Join(d.path, name), nil
}

// Put implements Store.
func (d *Dir) Put(name string, data []byte) (err error) {
	final, err := d.file(name)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, name)
	}
	tmp, err := os.CreateTemp(d.path, name+tempMarker+"*")
	if err != nil {
		return fmt.Errorf("archive: put %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("archive: put %s: %w", name, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("archive: put %s: %w", name, err)
	}
	if err = tmp.Chmod(0o444); err != nil {
		return fmt.Errorf("archive: put %s: %w", name, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("archive: put %s: %w", name, err)
	}
	switch err = os.Link(tmp.Name(), final); {
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %s", ErrExists, name)
	case err != nil:
		// A filesystem without hard links: rename, having checked above
		// that the name is free (one writer per archive).
		if err = os.Rename(tmp.Name(), final); err != nil {
			return fmt.Errorf("archive: put %s: %w", name, err)
		}
	default:
		if err = os.Remove(tmp.Name()); err != nil {
			return fmt.Errorf("archive: put %s: %w", name, err)
		}
	}
	if err = durable.SyncDir(d.path); err != nil {
		return fmt.Errorf("archive: put %s: %w", name, err)
	}
	return nil
}

// Get implements Store.
func (d *Dir) Get(name string) ([]byte, error) {
	p, err := d.file(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("archive: get %s: %w", name, err)
	}
	return b, nil
}

// List implements Store.
func (d *Dir) List() ([]string, error) {
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("archive: list: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.Contains(e.Name(), tempMarker) && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Delete implements Store.
func (d *Dir) Delete(name string) error {
	p, err := d.file(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archive: delete %s: %w", name, err)
	}
	if err := durable.SyncDir(d.path); err != nil {
		return fmt.Errorf("archive: delete %s: %w", name, err)
	}
	return nil
}
