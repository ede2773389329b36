// Package log is the durable home of Cairn's Raft log and Raft's stable
// state (current term, vote), kept in one Pebble database so that a single
// fsync covers both and a node needs one storage engine, not two.
//
// Key layout. Every key starts with a one-byte prefix so that each kind of
// record occupies its own contiguous key range:
//
//	0x01 | index (8 bytes, big-endian)  -> encoded raft.Log (see codec.go)
//	0x02 | stable key (raw bytes)       -> value as given to Set/SetUint64
//	0x03 | "commit"                     -> commit index (8 bytes, big-endian)
//
// Big-endian indexes make byte order equal numeric order, which is what lets
// FirstIndex and LastIndex be a single seek at either end of the 0x01 range
// and lets DeleteRange drop a span of entries with one range tombstone
// instead of one deletion per entry. Separate prefixes keep Raft's stable
// keys, whatever bytes they contain, from ever landing inside the log range.
// The commit index has its own prefix, not a stable key, so no caller of Set
// can overwrite it.
//
// Every write is committed with pebble.Sync: Raft acknowledges entries and
// votes to its peers as soon as the store returns, so a write that returned
// must survive a crash.
package log
