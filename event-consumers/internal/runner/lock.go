package runner

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// workerLock is a session advisory lock held on a dedicated connection: the lock lives exactly as long
// as the session, so when a process dies (or its connection does) PostgreSQL releases it and a standby
// takes over.
type workerLock struct {
	conn *pgx.Conn
	key  string
}

// acquireLock blocks until this process holds the lock named key, retrying every `retry`, or ctx ends.
func acquireLock(ctx context.Context, connect Connector, log *slog.Logger, key string, retry time.Duration) (*workerLock, error) {
	var conn *pgx.Conn
	waiting := false
	for {
		if conn == nil {
			c, err := connect(ctx)
			if err != nil && ctx.Err() == nil {
				log.Warn("worker lock: cannot connect", "lock", key, "err", err)
			}
			conn = c
		}
		if conn != nil {
			var got bool
			err := conn.QueryRow(ctx, `select pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&got)
			switch {
			case err != nil:
				conn.Close(context.WithoutCancel(ctx))
				conn = nil
				if ctx.Err() == nil {
					log.Warn("worker lock: try failed", "lock", key, "err", err)
				}
			case got:
				return &workerLock{conn: conn, key: key}, nil
			case !waiting:
				waiting = true
				log.Info("standing by: another process runs this consumer", "lock", key)
			}
		}
		select {
		case <-ctx.Done():
			if conn != nil {
				conn.Close(context.WithoutCancel(ctx))
			}
			return nil, ctx.Err()
		case <-time.After(retry):
		}
	}
}

// watch pings the lock's session every `every` and returns when it fails (the lock may be gone) or ctx
// ends.
func (l *workerLock) watch(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, every)
		err := l.conn.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("lock session %s lost: %w", l.key, err)
		}
	}
}

// check asks the lock's session whether it still holds the lock (one round trip): an error when it does
// not, or the session is gone.
func (l *workerLock) check(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var held bool
	err := l.conn.QueryRow(cctx, `select exists (select 1 from pg_locks where locktype = 'advisory' and granted
		and pid = pg_backend_pid() and objid = (hashtextextended($1, 0) & 4294967295)::oid)`, l.key).Scan(&held)
	switch {
	case err != nil:
		return fmt.Errorf("lock session %s lost: %w", l.key, err)
	case !held:
		return fmt.Errorf("lock %s no longer held", l.key)
	}
	return nil
}

// release unlocks by closing the session.
func (l *workerLock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l.conn.Close(ctx)
}
