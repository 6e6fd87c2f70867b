package postgres

import (
	"context"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"upi/query-service/internal/app"
	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// Listener holds the service's one LISTEN connection and feeds the consumers' notifications (checkpoint
// moves, settled payments) into an app.Watch, so that waiting requests cost no database work.
type Listener struct {
	listener  eventstore.Listener
	watch     *app.Watch
	connected prometheus.Gauge
}

// NewListener returns a listener feeding watch.
func NewListener(pool *pgxpool.Pool, watch *app.Watch, log *slog.Logger, reg prometheus.Registerer) *Listener {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "query_listener_connected",
		Help: "1 while the notification listener is connected; without it waits end by timeout only."})
	reg.MustRegister(g)
	l := &Listener{watch: watch, connected: g}
	l.listener = eventstore.Listener{Pool: pool, Log: log, What: "notification listener",
		Channels:  []string{projection.CheckpointChannel, projection.PaymentSettledChannel},
		Listening: l.catchUp, Notified: l.notified, Lost: l.lost}
	return l
}

// Run listens until ctx ends, reconnecting with back-off.
func (l *Listener) Run(ctx context.Context) {
	defer l.connected.Set(0)
	l.listener.Run(ctx)
}

// catchUp reads the checkpoints on a new connection, once it listens: nothing that moves in between is
// missed.
func (l *Listener) catchUp(ctx context.Context, conn *pgx.Conn) error {
	cps, err := readCheckpoints(ctx, conn)
	if err != nil {
		return err
	}
	for name, p := range cps {
		l.watch.Checkpoint(name, p)
	}
	l.watch.WakeAll()
	l.connected.Set(1)
	return nil
}

func (l *Listener) notified(n *pgconn.Notification) {
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

// lost wakes every waiter when the connection is lost: whatever was notified meanwhile is lost too.
func (l *Listener) lost() {
	l.connected.Set(0)
	l.watch.WakeAll()
}
