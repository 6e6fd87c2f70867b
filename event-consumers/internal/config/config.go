// Package config reads the event consumers' settings from the environment, once, in main.
package config

import (
	"fmt"
	"log/slog"

	"github.com/caarlos0/env/v11"

	"upi/shared/observability"
)

// Config is every setting of the event consumers.
type Config struct {
	DatabaseURL       string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/upi?sslmode=disable"`
	Addr              string `env:"EVENT_CONSUMERS_ADDR" envDefault:":8083"`
	CommandServiceURL string `env:"COMMAND_SERVICE_URL" envDefault:"http://127.0.0.1:8081"`
	LogLevel          string `env:"LOG_LEVEL" envDefault:"info"`
	// PprofAddr, when set, serves Go profiles on a listener of its own (e.g. 127.0.0.1:6061).
	PprofAddr string `env:"PPROF_ADDR"`
	// BatchSize is how many events a consumer handles per transaction; RebuildBatch the same for a replay.
	BatchSize    int `env:"CONSUMER_BATCH_SIZE" envDefault:"500"`
	RebuildBatch int `env:"REBUILD_BATCH_SIZE" envDefault:"5000"`
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
	return cfg, nil
}

// LogValue masks secrets when the config is logged.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("database_url", observability.RedactURL(c.DatabaseURL)),
		slog.String("addr", c.Addr),
		slog.String("command_service_url", c.CommandServiceURL),
		slog.String("log_level", c.LogLevel),
		slog.String("pprof_addr", c.PprofAddr),
		slog.Int("batch_size", c.BatchSize),
		slog.Int("rebuild_batch_size", c.RebuildBatch),
	)
}
