package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Open connects a pool for a service and refuses a database whose schema is older than this build.
// Every session gets idle_in_transaction_session_timeout, so that a stuck transaction cannot hold back
// the log horizon that consumers read below for long, and does SET ROLE to role (the service's own, made
// by the migrations) as soon as it is connected, so the service has that role's rights only, whatever
// login url names. Connections made from the pool's config (LISTEN connections) do the same. Each
// configure function, if any, adjusts the pool's configuration before it connects (a query tracer, for
// example).
func Open(ctx context.Context, url, application, role string, maxConns int32, configure ...func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	// A server that is gone (a restarting container's address answers nothing) must fail a connect in
	// seconds, not the minutes TCP would wait: the services answer 503 well before the gateway's deadline.
	// A connect_timeout in the URL wins.
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = ConnectTimeout
	}
	rp := cfg.ConnConfig.RuntimeParams
	rp["application_name"] = application
	if _, ok := rp["idle_in_transaction_session_timeout"]; !ok {
		rp["idle_in_transaction_session_timeout"] = "10s"
	}
	if role == "" {
		return nil, errors.New("no database role: each service runs as its own (DATABASE_ROLE)")
	}
	cfg.ConnConfig.AfterConnect = SetRole(role)
	for _, f := range configure {
		f(cfg)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(cctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := RequireSchema(cctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// ConnectTimeout bounds a new connection's dial and start-up, unless DATABASE_URL sets connect_timeout.
const ConnectTimeout = 2 * time.Second

// SetRole is a pgconn AfterConnect hook that switches a new connection to role. The login must be a
// member of role; when it is not, connecting fails with PostgreSQL's "permission denied to set role".
func SetRole(role string) func(context.Context, *pgconn.PgConn) error {
	stmt := "set role " + pgx.Identifier{role}.Sanitize()
	return func(ctx context.Context, conn *pgconn.PgConn) error {
		if _, err := conn.Exec(ctx, stmt).ReadAll(); err != nil {
			return fmt.Errorf("set role %s: %w", role, err)
		}
		return nil
	}
}
