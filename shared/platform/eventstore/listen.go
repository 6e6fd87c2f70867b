package eventstore

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Listener holds one LISTEN connection, outside the pool, on Channels, and hands its notifications to
// Notified. A notification is a wake-up, never the only way to learn something: what was notified while
// the connection was down is lost, so Listening catches up on each new connection, and Lost wakes
// whoever waits when one is lost. Both services that listen (the consumers' append hints, the query
// service's checkpoint and settlement channels) share this loop.
type Listener struct {
	Pool     *pgxpool.Pool // whose connection settings the listening connection uses
	Channels []string
	Log      *slog.Logger
	// What names the listener in log lines ("event hint listener").
	What string

	// Listening runs on every new connection once it listens, before any notification is read: what
	// happened while there was no connection is caught up here. Nil: nothing to catch up.
	Listening func(ctx context.Context, conn *pgx.Conn) error
	// Notified runs for each notification, in order.
	Notified func(n *pgconn.Notification)
	// Lost runs when a connection is lost and the listener is about to reconnect (not when ctx ends).
	Lost func()
}

// Run listens until ctx ends, reconnecting with back-off (100ms doubling to 5s).
func (l *Listener) Run(ctx context.Context) {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := l.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		l.Log.Warn(l.What+" lost, reconnecting", "err", err, "retry_in", delay.String())
		l.Lost()
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// listen holds one connection until it fails or ctx ends.
func (l *Listener) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, l.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, ch := range l.Channels {
		if _, err := conn.Exec(ctx, "listen "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	if l.Listening != nil {
		if err := l.Listening(ctx, conn); err != nil {
			return err
		}
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		l.Notified(n)
	}
}
