// Package config reads the query service's settings from the environment, once, in main.
package config

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/caarlos0/env/v11"

	"upi/shared/platform/keyring"
	"upi/shared/platform/observability"
	"upi/shared/platform/secrets"
	"upi/shared/platform/servicetoken"
)

// Config is every setting of the query service.
type Config struct {
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/upi?sslmode=disable"`
	// DatabaseRole is the role every connection SET ROLEs to; the login of DatabaseURL must be a member.
	DatabaseRole string        `env:"DATABASE_ROLE" envDefault:"upi_query"`
	Addr         string        `env:"QUERY_SERVICE_ADDR" envDefault:":8082"`
	QueryWaitMax time.Duration `env:"QUERY_WAIT_MAX" envDefault:"2s"`
	LogLevel     string        `env:"LOG_LEVEL" envDefault:"info"`
	// OpsAddr is the operations listener: /metrics, the detailed /readyz, profiles (never published).
	OpsAddr string `env:"QUERY_SERVICE_OPS_ADDR" envDefault:":8092"`
	// OperatorKeys open the operations listener's admin routes (name=key pairs).
	OperatorKeys string `env:"OPERATOR_KEYS"`
	// ServicePeers are the keys of the services that may call this one (servicetoken): the gateway's,
	// service=key pairs.
	ServicePeers string `env:"SERVICE_PEERS"`

	Mode      string            `env:"-"` // UPI_ENV
	Operators []keyring.Entry   `env:"-"`
	Peers     map[string]string `env:"-"`
}

// Development reports whether the service runs in development mode.
func (c Config) Development() bool { return c.Mode == secrets.Development }

// Load parses and validates the environment.
func Load() (Config, error) {
	environ, err := secrets.Environ()
	if err != nil {
		return Config{}, err
	}
	cfg, err := env.ParseAsWithOptions[Config](env.Options{Environment: environ})
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if cfg.Mode, err = secrets.Mode(environ); err != nil {
		return cfg, err
	}
	var check secrets.Check
	if cfg.Operators, err = keyring.Operators(&check, cfg.Development(), cfg.OperatorKeys); err != nil {
		return cfg, err
	}
	if cfg.Peers, err = servicetoken.Peers(&check, cfg.Development(), servicetoken.QueryService, cfg.ServicePeers,
		servicetoken.Gateway); err != nil {
		return cfg, err
	}
	check.URLPassword("DATABASE_URL", cfg.DatabaseURL)
	if !cfg.Development() {
		if err := check.Err("query-service"); err != nil {
			return cfg, err
		}
	}
	if cfg.QueryWaitMax < 0 || cfg.QueryWaitMax > 30*time.Second {
		return cfg, fmt.Errorf("config: QUERY_WAIT_MAX must be between 0 and 30s")
	}
	return cfg, nil
}

// LogValue masks secrets when the config is logged.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mode", c.Mode),
		slog.String("ops_addr", c.OpsAddr),
		slog.Any("operators", keyring.New(c.Operators).Names()),
		slog.Int("service_peers", len(c.Peers)),
		slog.String("database_url", observability.RedactURL(c.DatabaseURL)),
		slog.String("database_role", c.DatabaseRole),
		slog.String("addr", c.Addr),
		slog.Duration("query_wait_max", c.QueryWaitMax),
		slog.String("log_level", c.LogLevel),
	)
}
