// Package config reads the event consumers' settings from the environment, once, in main.
package config

import (
	"fmt"
	"log/slog"

	"github.com/caarlos0/env/v11"

	"upi/shared/platform/observability"
)

// Config is every setting of the event consumers.
type Config struct {
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/upi?sslmode=disable"`
	// DatabaseRole is the role every connection SET ROLEs to; the login of DatabaseURL must be a member.
	DatabaseRole      string `env:"DATABASE_ROLE" envDefault:"upi_consumers"`
	Addr              string `env:"EVENT_CONSUMERS_ADDR" envDefault:":8083"`
	CommandServiceURL string `env:"COMMAND_SERVICE_URL" envDefault:"http://127.0.0.1:8081"`
	LogLevel          string `env:"LOG_LEVEL" envDefault:"info"`
	// PprofAddr, when set, serves Go profiles on a listener of its own (e.g. 127.0.0.1:6061).
	PprofAddr string `env:"PPROF_ADDR"`
	// BatchSize is how many events a consumer handles per transaction; RebuildBatch the same for a replay.
	BatchSize    int `env:"CONSUMER_BATCH_SIZE" envDefault:"500"`
	RebuildBatch int `env:"REBUILD_BATCH_SIZE" envDefault:"5000"`
	// The event feed (docs/event-feed.md): the relay publishes the log to RABBITMQ_URL's RELAY_EXCHANGE
	// unless RELAY_ENABLED is false. RELAY_IN_FLIGHT bounds the messages awaiting the broker's confirm.
	RelayEnabled  bool   `env:"RELAY_ENABLED" envDefault:"true"`
	RabbitMQURL   string `env:"RABBITMQ_URL" envDefault:"amqp://guest:guest@127.0.0.1:5672/"`
	RelayExchange string `env:"RELAY_EXCHANGE" envDefault:"upi.events"`
	RelayInFlight int    `env:"RELAY_IN_FLIGHT" envDefault:"256"`
}

// Load parses and validates the environment.
func Load() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if cfg.BatchSize < 1 || cfg.BatchSize > 10000 || cfg.RebuildBatch < 1 || cfg.RebuildBatch > 50000 {
		return cfg, fmt.Errorf("config: CONSUMER_BATCH_SIZE must be 1..10000 and REBUILD_BATCH_SIZE 1..50000")
	}
	if cfg.RelayEnabled && (cfg.RelayExchange == "" || cfg.RelayInFlight < 1 || cfg.RelayInFlight > 10000) {
		return cfg, fmt.Errorf("config: RELAY_EXCHANGE must be set and RELAY_IN_FLIGHT be 1..10000")
	}
	return cfg, nil
}

// LogValue masks secrets when the config is logged.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("database_url", observability.RedactURL(c.DatabaseURL)),
		slog.String("database_role", c.DatabaseRole),
		slog.String("addr", c.Addr),
		slog.String("command_service_url", c.CommandServiceURL),
		slog.String("log_level", c.LogLevel),
		slog.String("pprof_addr", c.PprofAddr),
		slog.Int("batch_size", c.BatchSize),
		slog.Int("rebuild_batch_size", c.RebuildBatch),
		slog.Bool("relay_enabled", c.RelayEnabled),
		slog.String("rabbitmq_url", observability.RedactURL(c.RabbitMQURL)),
		slog.String("relay_exchange", c.RelayExchange),
		slog.Int("relay_in_flight", c.RelayInFlight),
	)
}
