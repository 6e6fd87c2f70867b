// Package config reads the gateway's settings from the environment, once, in main.
package config

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/redis/go-redis/v9"

	"upi/shared/platform/observability"
)

// Config is every setting of the gateway.
type Config struct {
	RedisURL          string        `env:"REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	APIKeys           string        `env:"API_KEYS" envDefault:"psp-alpha=alpha-secret,psp-beta=beta-secret"`
	CommandServiceURL string        `env:"COMMAND_SERVICE_URL" envDefault:"http://127.0.0.1:8081"`
	QueryServiceURL   string        `env:"QUERY_SERVICE_URL" envDefault:"http://127.0.0.1:8082"`
	Addr              string        `env:"GATEWAY_ADDR" envDefault:":8080"`
	RateLimitRPS      int           `env:"RATE_LIMIT_RPS" envDefault:"100"`
	RateLimitBurst    int           `env:"RATE_LIMIT_BURST" envDefault:"200"`
	IdempotencyTTL    time.Duration `env:"IDEMPOTENCY_TTL" envDefault:"24h"`
	PaymentMaxPaise   int64         `env:"PAYMENT_MAX_PAISE" envDefault:"10000000"`
	DepositMaxPaise   int64         `env:"DEPOSIT_MAX_PAISE" envDefault:"100000000"`
	// QueryWaitMax is how long the query service may wait for min_position; the gateway's deadline on a
	// read that names one is this plus a margin.
	QueryWaitMax time.Duration `env:"QUERY_WAIT_MAX" envDefault:"2s"`
	// MaxCommandsInFlight bounds the commands under way at once; one more is answered 503 OVERLOADED.
	MaxCommandsInFlight int    `env:"GATEWAY_MAX_IN_FLIGHT" envDefault:"64"`
	LogLevel            string `env:"LOG_LEVEL" envDefault:"info"`
	// PprofAddr, when set, serves Go profiles on a listener of its own (e.g. 127.0.0.1:6060).
	PprofAddr string `env:"PPROF_ADDR"`

	// Clients maps API key to client id, parsed from APIKeys.
	Clients map[string]string `env:"-"`
}

// Load parses and validates the environment.
func Load() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if cfg.Clients, err = ParseAPIKeys(cfg.APIKeys); err != nil {
		return cfg, fmt.Errorf("config: API_KEYS: %w", err)
	}
	if cfg.RateLimitRPS <= 0 || cfg.RateLimitBurst <= 0 {
		return cfg, fmt.Errorf("config: RATE_LIMIT_RPS and RATE_LIMIT_BURST must be positive")
	}
	if cfg.IdempotencyTTL < time.Minute {
		return cfg, fmt.Errorf("config: IDEMPOTENCY_TTL must be at least 1m")
	}
	if cfg.QueryWaitMax < 0 || cfg.QueryWaitMax > 30*time.Second {
		return cfg, fmt.Errorf("config: QUERY_WAIT_MAX must be from 0 to 30s")
	}
	if cfg.PaymentMaxPaise <= 0 || cfg.DepositMaxPaise <= 0 {
		return cfg, fmt.Errorf("config: PAYMENT_MAX_PAISE and DEPOSIT_MAX_PAISE must be positive")
	}
	if cfg.MaxCommandsInFlight <= 0 {
		return cfg, fmt.Errorf("config: GATEWAY_MAX_IN_FLIGHT must be positive")
	}
	return cfg, nil
}

// ParseAPIKeys reads "client_id=key,client_id=key" into key -> client id.
func ParseAPIKeys(s string) (map[string]string, error) {
	out := map[string]string{}
	for i, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		client, key, ok := strings.Cut(pair, "=")
		if !ok || client == "" || key == "" {
			return nil, fmt.Errorf("entry %d is not client_id=key", i+1)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("a key is given to more than one client")
		}
		out[key] = client
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no keys configured")
	}
	return out, nil
}

// LogValue masks secrets when the config is logged: the keys never appear, only the client ids.
func (c Config) LogValue() slog.Value {
	clients := make([]string, 0, len(c.Clients))
	for _, id := range c.Clients {
		clients = append(clients, id)
	}
	return slog.GroupValue(
		slog.String("redis_url", observability.RedactURL(c.RedisURL)),
		slog.Any("clients", clients),
		slog.String("command_service_url", c.CommandServiceURL),
		slog.String("query_service_url", c.QueryServiceURL),
		slog.String("addr", c.Addr),
		slog.Int("rate_limit_rps", c.RateLimitRPS),
		slog.Int("rate_limit_burst", c.RateLimitBurst),
		slog.Duration("idempotency_ttl", c.IdempotencyTTL),
		slog.Int64("payment_max_paise", c.PaymentMaxPaise),
		slog.Int64("deposit_max_paise", c.DepositMaxPaise),
		slog.Duration("query_wait_max", c.QueryWaitMax),
		slog.Int("max_in_flight", c.MaxCommandsInFlight),
		slog.String("log_level", c.LogLevel),
		slog.String("pprof_addr", c.PprofAddr),
	)
}

// RedisOptions are the client settings for REDIS_URL. Redis is a fast path here (idempotency replays,
// rate limits), never the only guard, so a slow or dead Redis must cost a request milliseconds before the
// gateway goes on without it: short timeouts, one dial attempt, one quick command retry.
func RedisOptions(url string) (*redis.Options, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
	opts.DialTimeout = 500 * time.Millisecond
	opts.DialerRetries = 1
	opts.ReadTimeout = 300 * time.Millisecond
	opts.WriteTimeout = 300 * time.Millisecond
	opts.MaxRetries = 1
	opts.MaxRetryBackoff = 20 * time.Millisecond
	opts.ContextTimeoutEnabled = true
	return opts, nil
}
