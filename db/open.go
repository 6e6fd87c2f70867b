package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Open connects a pool for a service and refuses a database whose schema is older than this build.
// Every session gets idle_in_transaction_session_timeout, so that a stuck transaction cannot hold back
// the log horizon that consumers read below for long. Each configure function, if any, adjusts the pool's
// configuration before it connects (a query tracer, for example).
func Open(ctx context.Context, url, application string, maxConns int32, configure ...func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	rp := cfg.ConnConfig.RuntimeParams
	rp["application_name"] = application
	if _, ok := rp["idle_in_transaction_session_timeout"]; !ok {
		rp["idle_in_transaction_session_timeout"] = "10s"
	}
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
