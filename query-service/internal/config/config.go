// Package config reads the query service's settings from the environment, once, in main.
package config

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/caarlos0/env/v11"

	"upi/shared/platform/observability"
)

// Config is every setting of the query service.
type Config struct {
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/upi?sslmode=disable"`
	// DatabaseRole is the role every connection SET ROLEs to; the login of DatabaseURL must be a member.
	DatabaseRole string        `env:"DATABASE_ROLE" envDefault:"upi_query"`
	Addr         string        `env:"QUERY_SERVICE_ADDR" envDefault:":8082"`
	QueryWaitMax time.Duration `env:"QUERY_WAIT_MAX" envDefault:"2s"`
	LogLevel     string        `env:"LOG_LEVEL" envDefault:"info"`
	// PprofAddr, when set, serves Go profiles on a listener of its own (e.g. 127.0.0.1:6061).
	PprofAddr string `env:"PPROF_ADDR"`
}

// Load parses and validates the environment.
func Load() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if cfg.QueryWaitMax < 0 || cfg.QueryWaitMax > 30*time.Second {
		return cfg, fmt.Errorf("config: QUERY_WAIT_MAX must be between 0 and 30s")
	}
	return cfg, nil
}

// LogValue masks secrets when the config is logged.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("database_url", observability.RedactURL(c.DatabaseURL)),
		slog.String("database_role", c.DatabaseRole),
		slog.String("addr", c.Addr),
		slog.Duration("query_wait_max", c.QueryWaitMax),
		slog.String("log_level", c.LogLevel),
		slog.String("pprof_addr", c.PprofAddr),
	)
}
