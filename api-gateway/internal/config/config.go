// Package config reads the gateway's settings from the environment, once, in main.
package config

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/redis/go-redis/v9"

	"upi/shared/platform/keyring"
	"upi/shared/platform/observability"
	"upi/shared/platform/secrets"
	"upi/shared/platform/servicetoken"
)

// Config is every setting of the gateway.
type Config struct {
	RedisURL string `env:"REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	// APIKeys are the clients' keys, client_id=key or client_id=sha256:<hex> pairs; the default is for
	// development only (refused outside it). API_KEYS_FILE, when set, is re-read while the gateway runs.
	APIKeys     string `env:"API_KEYS" envDefault:"psp-alpha=alpha-secret,psp-beta=beta-secret"`
	APIKeysFile string `env:"API_KEYS_FILE"`
	// OperatorKeys are the operators' keys (name=key pairs) of the /v1/ops/ routes and the operations
	// listener's admin routes; OPERATOR_KEYS_FILE, when set, is re-read while the gateway runs.
	OperatorKeys     string `env:"OPERATOR_KEYS"`
	OperatorKeysFile string `env:"OPERATOR_KEYS_FILE"`
	// ServiceKey is the root secret of the gateway's service tokens (servicetoken).
	ServiceKey string `env:"SERVICE_KEY"`
	// OpsAddr is the operations listener: /metrics, the detailed /readyz, profiles (never published).
	OpsAddr           string        `env:"GATEWAY_OPS_ADDR" envDefault:":8090"`
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
	// EventConsumersURL is the consumers' service, which answers the operators' ledger check.
	EventConsumersURL string        `env:"EVENT_CONSUMERS_URL" envDefault:"http://127.0.0.1:8083"`
	QueryWaitMax      time.Duration `env:"QUERY_WAIT_MAX" envDefault:"2s"`
	// MaxCommandsInFlight bounds the commands under way at once; one more is answered 503 OVERLOADED.
	MaxCommandsInFlight int `env:"GATEWAY_MAX_IN_FLIGHT" envDefault:"64"`
	// CommandBatchConcurrency, when set, is how many requests the gateway has under way to the command
	// service at once before the commands that arrive meanwhile wait and go together, as one batch, when
	// one returns; 0 (the default: batches did not save CPU measurably, docs/benchmarks.md) sends every
	// command as its own request, as many at once as arrive.
	CommandBatchConcurrency int    `env:"COMMAND_BATCH_CONCURRENCY" envDefault:"0"`
	LogLevel                string `env:"LOG_LEVEL" envDefault:"info"`

	// Mode is UPI_ENV: production unless development.
	Mode string `env:"-"`
	// Clients and Operators are the parsed keys.
	Clients   []keyring.Entry `env:"-"`
	Operators []keyring.Entry `env:"-"`
}

// Development reports whether the gateway runs in development mode.
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
	if cfg.Clients, err = ParseAPIKeys(cfg.APIKeys); err != nil {
		return cfg, fmt.Errorf("config: API_KEYS: %w", err)
	}
	var check secrets.Check
	keyring.Vet(&check, "API_KEYS", cfg.Clients)
	if cfg.Operators, err = keyring.Operators(&check, cfg.Development(), cfg.OperatorKeys); err != nil {
		return cfg, err
	}
	cfg.ServiceKey = servicetoken.Root(&check, cfg.Development(), servicetoken.Gateway, cfg.ServiceKey)
	check.URLPassword("REDIS_URL", cfg.RedisURL)
	if !cfg.Development() {
		if err := check.Err("api-gateway"); err != nil {
			return cfg, err
		}
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
	if cfg.CommandBatchConcurrency < 0 {
		return cfg, fmt.Errorf("config: COMMAND_BATCH_CONCURRENCY must be 0 (no batches) or more")
	}
	return cfg, nil
}

// ParseAPIKeys reads "client_id=key,client_id=sha256:<hex>,..." (a client may have several keys while
// one is rotated).
func ParseAPIKeys(s string) ([]keyring.Entry, error) {
	entries, err := keyring.Parse(s)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("no keys configured")
	}
	return entries, nil
}

// LogValue masks secrets when the config is logged: the keys never appear, only the client ids.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mode", c.Mode),
		slog.String("redis_url", observability.RedactURL(c.RedisURL)),
		slog.Any("clients", keyring.New(c.Clients).Names()),
		slog.Any("operators", keyring.New(c.Operators).Names()),
		slog.String("api_keys_file", c.APIKeysFile),
		slog.String("operator_keys_file", c.OperatorKeysFile),
		slog.String("ops_addr", c.OpsAddr),
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
		slog.Int("command_batch_concurrency", c.CommandBatchConcurrency),
		slog.String("log_level", c.LogLevel),
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
