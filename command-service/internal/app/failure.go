package app

import "fmt"

// failure wraps an error from the store with what was being done. The store has already marked the
// database's own failures (connection lost, timeouts, overload, shutdown, serialization) with
// ErrUnavailable; domain errors pass through for errors.Is.
func failure(op string, err error) error {
	return fmt.Errorf("%s: %w", op, err)
}
