// Command feed-subscriber follows the event feed into a per-account running total (package subscriber).
//
//	DATABASE_URL=postgres://... RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/ feed-subscriber
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	subscriber "upi/examples/feed-subscriber"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(ctx, log); err != nil {
		log.Error("exit", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg := subscriber.Config{
		RabbitMQURL: env("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
		Exchange:    env("RELAY_EXCHANGE", "upi.events"),
		Queue:       env("FEED_QUEUE", "example.account-totals"),
	}
	db, err := pgxpool.New(ctx, env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/feed_example?sslmode=disable"))
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer db.Close()
	if err := subscriber.Migrate(ctx, db); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	log.Info("following the event feed", "exchange", cfg.Exchange, "queue", cfg.Queue)
	return subscriber.New(cfg, db, log).Run(ctx)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
