package pointintime

// Builds counts the states built so far.
func (s *States) Builds() int64 { return s.builds.Load() }
