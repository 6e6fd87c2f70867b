package runner

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// execQuerier is a pool, a connection or a transaction.
type execQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Connector opens a dedicated connection outside the pool, for what must hold a session: a LISTEN, a
// session advisory lock.
type Connector func(ctx context.Context) (*pgx.Conn, error)
