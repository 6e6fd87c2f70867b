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
}

// Load parses and validates the environment.
func Load() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
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
	)
}
