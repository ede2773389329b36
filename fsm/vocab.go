package fsm

// History entry types (HistoryEntry.Type).
const (
	// HistEventDropped: an event the engine meant to emit could not be
	// encoded; the run's history says so instead of an empty event.
	HistEventDropped = "event.dropped"
)
