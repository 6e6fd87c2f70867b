package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// ErrUnavailable marks a failure of the database itself rather than of the request: the connection was
// lost or could not be made, a timeout, overload, an administrator's shutdown, a serialization failure.
// Nothing the failed call wrote committed, or its outcome is unknown and a retry finds it by the events'
// deterministic ids, so retrying later is safe. Callers answer it as "dependency unavailable".
var ErrUnavailable = errors.New("event store unavailable")

// MarkUnavailable marks err with ErrUnavailable when the database failed; other errors pass unchanged. This
// is where the driver's errors are translated: callers above the store test errors.Is(err, ErrUnavailable)
// and never look at SQLSTATEs or network errors.
func MarkUnavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || !transient(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func transient(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"40", // transaction rollback: serialization failure, deadlock
			"53", // insufficient resources
			"57", // operator intervention: query canceled, admin shutdown, cannot connect now
			"58": // system error
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.Timeout(err) ||
		pgconn.SafeToRetry(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, puddle.ErrClosedPool)
}
