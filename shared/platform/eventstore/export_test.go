package eventstore

import "context"

// The stress test writes some of its events inside transactions it opens itself, so that it can delay
// and roll them back; it appends them with the store's own lock and insert rather than a copy of them.
var (
	LockStream   = lockStream
	InsertEvents = insert
)

// LoadStream returns one stream's events in version order: what the tests check was stored.
func LoadStream(ctx context.Context, s *Store, aggregateID string) ([]Event, error) {
	rows, err := s.pool.Query(ctx, streamSQL, aggregateID, 0)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}
