package postgres

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"upi/query-service/internal/app"
	"upi/shared/contract/projection"
)

// Listener holds the service's one LISTEN connection and feeds the consumers' notifications (checkpoint
// moves, settled payments) into an app.Watch, so that waiting requests cost no database work.
type Listener struct {
	pool      *pgxpool.Pool
	watch     *app.Watch
	log       *slog.Logger
	connected prometheus.Gauge
}

// NewListener returns a listener feeding watch.
func NewListener(pool *pgxpool.Pool, watch *app.Watch, log *slog.Logger, reg prometheus.Registerer) *Listener {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "query_listener_connected",
		Help: "1 while the notification listener is connected; without it waits end by timeout only."})
	reg.MustRegister(g)
	return &Listener{pool: pool, watch: watch, log: log, connected: g}
}

// Run listens until ctx ends, reconnecting with back-off.
func (l *Listener) Run(ctx context.Context) {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := l.listen(ctx)
		l.connected.Set(0)
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("notification listener lost, reconnecting", "err", err, "retry_in", delay.String())
		l.watch.WakeAll()
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (l *Listener) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, l.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, ch := range []string{projection.CheckpointChannel, projection.PaymentSettledChannel} {
		if _, err := conn.Exec(ctx, "listen "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	// Listening first, then reading the checkpoints: nothing that moves in between is missed.
	cps, err := readCheckpoints(ctx, conn)
	if err != nil {
		return err
	}
	for name, p := range cps {
		l.watch.Checkpoint(name, p)
	}
	l.watch.WakeAll()
	l.connected.Set(1)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch n.Channel {
		case projection.CheckpointChannel:
			if name, p, ok := projection.ParseCheckpointPayload(n.Payload); ok {
				l.watch.Checkpoint(name, p)
			}
		case projection.PaymentSettledChannel:
			for _, id := range strings.Split(n.Payload, ",") {
				l.watch.Settle(id)
			}
		}
	}
}
