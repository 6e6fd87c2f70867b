// Package config reads the event consumers' settings from the environment, once, in main.
package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"upi/event-consumers/internal/app/settlement"
	"upi/shared/contract/webhook"
	"upi/shared/platform/keyring"
	"upi/shared/platform/observability"
	"upi/shared/platform/secrets"
	"upi/shared/platform/servicetoken"
)

// Config is every setting of the event consumers.
type Config struct {
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/upi?sslmode=disable"`
	// DatabaseRole is the role every connection SET ROLEs to; the login of DatabaseURL must be a member.
	DatabaseRole      string `env:"DATABASE_ROLE" envDefault:"upi_consumers"`
	Addr              string `env:"EVENT_CONSUMERS_ADDR" envDefault:":8083"`
	CommandServiceURL string `env:"COMMAND_SERVICE_URL" envDefault:"http://127.0.0.1:8081"`
	LogLevel          string `env:"LOG_LEVEL" envDefault:"info"`
	// OpsAddr is the operations listener: /metrics, the detailed /readyz, profiles and the admin routes
	// (never published).
	OpsAddr string `env:"EVENT_CONSUMERS_OPS_ADDR" envDefault:":8093"`
	// OperatorKeys open the operations listener's admin routes (name=key pairs).
	OperatorKeys string `env:"OPERATOR_KEYS"`
	// ServiceKey is the root secret of the consumers' service tokens (servicetoken).
	ServiceKey string `env:"SERVICE_KEY"`
	// ServicePeers are the keys of the services that may call this one (the gateway's, for the operator
	// routes it forwards), service=key pairs.
	ServicePeers string `env:"SERVICE_PEERS"`
	// BatchSize is how many events a consumer handles per transaction; RebuildBatch the same for a replay.
	BatchSize    int `env:"CONSUMER_BATCH_SIZE" envDefault:"500"`
	RebuildBatch int `env:"REBUILD_BATCH_SIZE" envDefault:"5000"`
	// Partitions splits the partitioned consumers (the payment workflow, the accounts and payments
	// projections) into that many workers each, NAME#K/N, which share the work within the process and
	// across replicas (docs/architecture.md, "Partitions"). Change it only as docs/deployment.md says.
	Partitions int `env:"CONSUMER_PARTITIONS" envDefault:"1"`
	// The event feed (docs/event-feed.md): the relay publishes the log to RABBITMQ_URL's RELAY_EXCHANGE
	// unless RELAY_ENABLED is false. RELAY_IN_FLIGHT bounds the messages awaiting the broker's confirm.
	RelayEnabled  bool   `env:"RELAY_ENABLED" envDefault:"true"`
	RabbitMQURL   string `env:"RABBITMQ_URL" envDefault:"amqp://guest:guest@127.0.0.1:5672/"`
	RelayExchange string `env:"RELAY_EXCHANGE" envDefault:"upi.events"`
	RelayInFlight int    `env:"RELAY_IN_FLIGHT" envDefault:"256"`
	// RELAY_ONLY runs the relay and nothing else: the process that alone sits on both the services'
	// network and the feed's (docker-compose.yml, "feed-relay"), while another runs the rest with
	// RELAY_ENABLED=false.
	RelayOnly bool `env:"RELAY_ONLY" envDefault:"false"`
	// MandateTimerEvery is how often the mandates' timer looks for due steps (its precision).
	MandateTimerEvery time.Duration `env:"MANDATE_TIMER_EVERY" envDefault:"1s"`

	// Webhooks (docs/webhooks.md): the consumer that queues deliveries and the sender, unless
	// WEBHOOKS_ENABLED is false. WEBHOOK_SECRET_KEY must be the command service's.
	WebhooksEnabled     bool          `env:"WEBHOOKS_ENABLED" envDefault:"true"`
	WebhookSecretKey    string        `env:"WEBHOOK_SECRET_KEY"`
	WebhookRetryBase    time.Duration `env:"WEBHOOK_RETRY_BASE" envDefault:"5s"`
	WebhookRetryMax     time.Duration `env:"WEBHOOK_RETRY_MAX" envDefault:"1h"`
	WebhookMaxAge       time.Duration `env:"WEBHOOK_MAX_AGE" envDefault:"72h"`
	WebhookDisableAfter time.Duration `env:"WEBHOOK_DISABLE_AFTER" envDefault:"72h"`
	WebhookTimeout      time.Duration `env:"WEBHOOK_TIMEOUT" envDefault:"10s"`
	WebhookWorkers      int           `env:"WEBHOOK_WORKERS" envDefault:"64"`
	WebhookConcurrency  int           `env:"WEBHOOK_ENDPOINT_CONCURRENCY" envDefault:"4"`
	WebhookPoll         time.Duration `env:"WEBHOOK_POLL" envDefault:"250ms"`
	// WEBHOOK_ALLOW_PRIVATE: unset, true in development mode (a receiver on this machine) and false
	// elsewhere; set, what it says.
	WebhookAllowPrivateSetting string `env:"WEBHOOK_ALLOW_PRIVATE"`
	WebhookAllowPrivate        bool   `env:"-"`

	// Settlement cycles (docs/architecture.md, "Settlement cycles and reconciliation"): NPCI's ten daily
	// cut-offs in IST, or cycles of SETTLEMENT_CYCLE_LENGTH (tests, drills). A cycle closes
	// SETTLEMENT_CLOSE_GRACE after its end (default 10s, at most half a cycle of SETTLEMENT_CYCLE_LENGTH),
	// which must outlast any write transaction. Changing them changes the projection: rebuild it.
	SettlementCycles      string              `env:"SETTLEMENT_CYCLES" envDefault:"00:00,05:00,07:00,09:00,11:00,13:00,15:00,17:00,19:00,21:00"`
	SettlementCycleLength time.Duration       `env:"SETTLEMENT_CYCLE_LENGTH" envDefault:"0s"`
	SettlementCloseGrace  time.Duration       `env:"SETTLEMENT_CLOSE_GRACE"`
	Settlement            settlement.Schedule `env:"-"`

	serving   secrets.Check     `env:"-"`
	Mode      string            `env:"-"` // UPI_ENV
	Operators []keyring.Entry   `env:"-"`
	Peers     map[string]string `env:"-"`
}

// ServeErr says, outside development mode, what makes the configuration unsafe to serve with (service
// keys, operator keys, the broker's password): nil in development mode.
func (c Config) ServeErr() error {
	if c.Development() {
		return nil
	}
	return c.serving.Err("event-consumers")
}

// Development reports whether the service runs in development mode.
func (c Config) Development() bool { return c.Mode == secrets.Development }

// LoadForVerify reads what `event-consumers verify` needs (DATABASE_URL, DATABASE_ROLE, secrets from
// *_FILE too) and checks no secret: the ledger check only reads, serves nothing and holds no key, so a
// local database whose login has no password may be checked in any mode.
func LoadForVerify() (Config, error) {
	cfg, _, err := parse()
	return cfg, err
}

// parse reads the environment (secrets from *_FILE too) into a Config, unchecked.
func parse() (Config, map[string]string, error) {
	environ, err := secrets.Environ()
	if err != nil {
		return Config{}, nil, err
	}
	cfg, err := env.ParseAsWithOptions[Config](env.Options{Environment: environ})
	if err != nil {
		return cfg, nil, fmt.Errorf("config: %w", err)
	}
	return cfg, environ, nil
}

// Load parses and validates the environment.
func Load() (Config, error) {
	cfg, environ, err := parse()
	if err != nil {
		return cfg, err
	}
	if cfg.Mode, err = secrets.Mode(environ); err != nil {
		return cfg, err
	}
	// What only serving needs (not `migrate` or `rebuild`) is checked by ServeErr.
	check := &cfg.serving
	if cfg.Operators, err = keyring.Operators(check, cfg.Development(), cfg.OperatorKeys); err != nil {
		return cfg, err
	}
	cfg.ServiceKey = servicetoken.Root(check, cfg.Development(), servicetoken.EventConsumers, cfg.ServiceKey)
	// Optional outside development: without it, the admin routes are reached on the operations listener only.
	if cfg.Development() && cfg.ServicePeers == "" {
		cfg.Peers = servicetoken.DevPeers(servicetoken.EventConsumers, servicetoken.Gateway)
	} else if cfg.Peers, err = servicetoken.Peers(check, cfg.Development(), servicetoken.EventConsumers, cfg.ServicePeers); err != nil {
		return cfg, err
	}
	var always secrets.Check
	always.URLPassword("DATABASE_URL", cfg.DatabaseURL)
	if cfg.RelayEnabled {
		check.URLPassword("RABBITMQ_URL", cfg.RabbitMQURL)
	}
	if !cfg.Development() {
		if err := always.Err("event-consumers"); err != nil {
			return cfg, err
		}
	}
	if cfg.BatchSize < 1 || cfg.BatchSize > 10000 || cfg.RebuildBatch < 1 || cfg.RebuildBatch > 50000 {
		return cfg, fmt.Errorf("config: CONSUMER_BATCH_SIZE must be 1..10000 and REBUILD_BATCH_SIZE 1..50000")
	}
	if cfg.Partitions < 1 || cfg.Partitions > 64 {
		return cfg, fmt.Errorf("config: CONSUMER_PARTITIONS must be 1..64")
	}
	if cfg.WebhooksEnabled && !cfg.RelayOnly { // the relay-only process sends no webhook
		switch v := strings.TrimSpace(cfg.WebhookAllowPrivateSetting); v {
		case "":
			cfg.WebhookAllowPrivate = cfg.Development()
		default:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return cfg, fmt.Errorf("config: WEBHOOK_ALLOW_PRIVATE must be true or false, got %q", v)
			}
			cfg.WebhookAllowPrivate = b
		}
		if cfg.WebhookSecretKey == "" && cfg.Development() {
			cfg.WebhookSecretKey = webhook.DevSecretKey
		}
		check.Secret("WEBHOOK_SECRET_KEY", cfg.WebhookSecretKey)
		if cfg.WebhookSecretKey == webhook.DevSecretKey || (cfg.WebhookSecretKey != "" && len(cfg.WebhookSecretKey) < 32) {
			check.Failf("WEBHOOK_SECRET_KEY must be a secret of your own, at least 32 characters")
		}
		if cfg.WebhookRetryBase <= 0 || cfg.WebhookRetryMax < cfg.WebhookRetryBase || cfg.WebhookMaxAge <= 0 ||
			cfg.WebhookDisableAfter <= 0 || cfg.WebhookTimeout <= 0 || cfg.WebhookPoll <= 0 ||
			cfg.WebhookWorkers < 1 || cfg.WebhookWorkers > 10000 || cfg.WebhookConcurrency < 1 || cfg.WebhookConcurrency > 64 {
			return cfg, fmt.Errorf("config: WEBHOOK_RETRY_BASE, WEBHOOK_MAX_AGE, WEBHOOK_DISABLE_AFTER, WEBHOOK_TIMEOUT and " +
				"WEBHOOK_POLL must be positive, WEBHOOK_RETRY_MAX at least WEBHOOK_RETRY_BASE, WEBHOOK_WORKERS 1..10000, " +
				"WEBHOOK_ENDPOINT_CONCURRENCY 1..64")
		}
	}
	if cfg.RelayEnabled && (cfg.RelayExchange == "" || cfg.RelayInFlight < 1 || cfg.RelayInFlight > 10000) {
		return cfg, fmt.Errorf("config: RELAY_EXCHANGE must be set and RELAY_IN_FLIGHT be 1..10000")
	}
	if cfg.Settlement, err = settlement.ParseSchedule(cfg.SettlementCycles, cfg.SettlementCycleLength); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if cfg.SettlementCloseGrace == 0 {
		cfg.SettlementCloseGrace = 10 * time.Second
		if l := cfg.SettlementCycleLength; l > 0 && l/2 < cfg.SettlementCloseGrace {
			cfg.SettlementCloseGrace = l / 2
		}
	}
	if cfg.SettlementCloseGrace < 0 {
		return cfg, fmt.Errorf("config: SETTLEMENT_CLOSE_GRACE must not be negative")
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
		slog.String("command_service_url", c.CommandServiceURL),
		slog.String("log_level", c.LogLevel),
		slog.Int("batch_size", c.BatchSize),
		slog.Int("rebuild_batch_size", c.RebuildBatch),
		slog.Int("partitions", c.Partitions),
		slog.Bool("relay_enabled", c.RelayEnabled),
		slog.String("rabbitmq_url", observability.RedactURL(c.RabbitMQURL)),
		slog.String("relay_exchange", c.RelayExchange),
		slog.Int("relay_in_flight", c.RelayInFlight),
		slog.Bool("webhooks_enabled", c.WebhooksEnabled),
		slog.String("webhook_retry_base", c.WebhookRetryBase.String()),
		slog.String("webhook_retry_max", c.WebhookRetryMax.String()),
		slog.String("webhook_max_age", c.WebhookMaxAge.String()),
		slog.String("webhook_disable_after", c.WebhookDisableAfter.String()),
		slog.String("webhook_timeout", c.WebhookTimeout.String()),
		slog.Bool("webhook_allow_private", c.WebhookAllowPrivate),
		slog.String("settlement_cycles", c.Settlement.String()),
		slog.Duration("settlement_close_grace", c.SettlementCloseGrace),
	)
}
