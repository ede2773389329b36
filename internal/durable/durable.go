// Package durable holds the one file-system step that makes a created,
// renamed or removed file survive a crash: syncing its directory.
package durable

import "github.com/cockroachdb/pebble/vfs"

// SyncDir fsyncs a directory on the real disk, so the entries created,
// renamed or removed in it are on disk (a file's own fsync does not cover
// its name).
func SyncDir(dir string) error { return SyncDirFS(vfs.Default, dir) }

// SyncDirFS is SyncDir on fs (tests pass Pebble's strict in-memory FS to
// crash at every sync).
func SyncDirFS(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
