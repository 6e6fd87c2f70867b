// Package config reads the command service's settings from the environment, once, in main.
package config

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/caarlos0/env/v11"

	"upi/command-service/internal/app"
	"upi/command-service/internal/domain"
	"upi/shared/contract/money"
	"upi/shared/contract/webhook"
	"upi/shared/platform/keyring"
	"upi/shared/platform/observability"
	"upi/shared/platform/secrets"
	"upi/shared/platform/servicetoken"
)

// Config is every setting of the command service.
type Config struct {
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/upi?sslmode=disable"`
	// DatabaseRole is the role every connection SET ROLEs to; the login of DatabaseURL must be a member.
	DatabaseRole    string `env:"DATABASE_ROLE" envDefault:"upi_command"`
	Addr            string `env:"COMMAND_SERVICE_ADDR" envDefault:":8081"`
	PaymentMaxPaise int64  `env:"PAYMENT_MAX_PAISE" envDefault:"10000000"`
	DepositMaxPaise int64  `env:"DEPOSIT_MAX_PAISE" envDefault:"100000000"`
	// Payer limits over the rolling 24 hours before a debit; 0 turns one off.
	LimitDailyPaise      int64  `env:"LIMIT_DAILY_PAISE" envDefault:"10000000"`
	LimitDailyP2PCount   int    `env:"LIMIT_DAILY_P2P_COUNT" envDefault:"10"`
	LimitNewAccountPaise int64  `env:"LIMIT_NEW_ACCOUNT_PAISE" envDefault:"500000"`
	LogLevel             string `env:"LOG_LEVEL" envDefault:"info"`
	// DepositDailyCapPaise bounds an account's deposits over the rolling 24 hours (0: no cap).
	DepositDailyCapPaise int64 `env:"DEPOSIT_DAILY_CAP_PAISE" envDefault:"100000000"`
	// SettlementShards is how many streams each bank's settlement account is spread over, so that the
	// bank's side of deposits and withdrawals never queues on one lock. Changing it is safe: a bank's
	// balance is the sum of every shard it ever used.
	SettlementShards int `env:"SETTLEMENT_SHARDS" envDefault:"64"`
	// CommitGroups is how many groups of client commands may be committing at once (group commit).
	CommitGroups int `env:"COMMIT_GROUPS" envDefault:"2"`
	// CommitQueueMax is how many client commands may wait for a group; one more is answered 503 OVERLOADED.
	CommitQueueMax int `env:"COMMIT_QUEUE_MAX" envDefault:"512"`
	// CommitWaitMax is how long a client command may wait for its group before it is answered 503
	// OVERLOADED instead of run.
	CommitWaitMax time.Duration `env:"COMMIT_WAIT_MAX" envDefault:"1s"`
	// RefundWindow is how long after its initiation a payment may be refunded.
	RefundWindow time.Duration `env:"REFUND_WINDOW" envDefault:"4320h"`
	// Mandates (UPI AutoPay): NPCI's numbers as publicly reported, each a setting (docs/mandates.md).
	MandateNotice        time.Duration `env:"MANDATE_NOTICE" envDefault:"24h"`
	MandateNoAuthLimit   int64         `env:"MANDATE_NO_AUTH_LIMIT_PAISE" envDefault:"1500000"`
	MandateRetries       int           `env:"MANDATE_RETRIES" envDefault:"3"`
	MandateRetryInterval time.Duration `env:"MANDATE_RETRY_INTERVAL" envDefault:"4h"`
	MandatePeakWindows   string        `env:"MANDATE_PEAK_WINDOWS" envDefault:"10:00-13:00,17:00-21:30"`
	MandateApprovalWait  time.Duration `env:"MANDATE_DEBIT_APPROVAL_WAIT" envDefault:"24h"`
	MandateRequestExpiry time.Duration `env:"MANDATE_REQUEST_EXPIRY" envDefault:"24h"`
	mandatePeak          domain.PeakWindows

	// Complaints: how long after a payment it may be complained about (NPCI: 45 days), and how long a
	// merchant has to answer a dispute (T+1: one day).
	ComplaintWindow time.Duration `env:"COMPLAINT_WINDOW" envDefault:"1080h"`
	ComplaintTAT    time.Duration `env:"COMPLAINT_TAT" envDefault:"24h"`
	// OpsAddr is the operations listener: /metrics, the detailed /readyz, profiles (never published).
	OpsAddr string `env:"COMMAND_SERVICE_OPS_ADDR" envDefault:":8091"`
	// OperatorKeys open the operations listener's admin routes (name=key pairs).
	OperatorKeys string `env:"OPERATOR_KEYS"`
	// ServicePeers are the keys of the services that may call this one (servicetoken): the gateway's
	// and the consumers' keys for the command service, service=key pairs.
	ServicePeers string `env:"SERVICE_PEERS"`
	// WebhookSecretKey is the key webhook endpoints' signing secrets are derived from (docs/webhooks.md);
	// event-consumers must have the same one. Development mode has a default, refused elsewhere.
	WebhookSecretKey string `env:"WEBHOOK_SECRET_KEY"`

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
	return c.serving.Err("command-service")
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
	// What only serving needs (not `migrate` or `rebuild`) is checked by ServeErr.
	check := &cfg.serving
	if cfg.Operators, err = keyring.Operators(check, cfg.Development(), cfg.OperatorKeys); err != nil {
		return cfg, err
	}
	if cfg.Peers, err = servicetoken.Peers(check, cfg.Development(), servicetoken.CommandService, cfg.ServicePeers,
		servicetoken.Gateway, servicetoken.EventConsumers); err != nil {
		return cfg, err
	}
	cfg.WebhookSecretKey = webhookSecretKey(check, cfg.Development(), cfg.WebhookSecretKey)
	var always secrets.Check
	always.URLPassword("DATABASE_URL", cfg.DatabaseURL)
	if !cfg.Development() {
		if err := always.Err("command-service"); err != nil {
			return cfg, err
		}
	}
	if cfg.PaymentMaxPaise <= 0 || cfg.DepositMaxPaise <= 0 {
		return cfg, fmt.Errorf("config: PAYMENT_MAX_PAISE and DEPOSIT_MAX_PAISE must be positive")
	}
	if cfg.DepositDailyCapPaise < 0 {
		return cfg, fmt.Errorf("config: DEPOSIT_DAILY_CAP_PAISE must be 0 (no cap) or positive")
	}
	if cfg.SettlementShards < 1 || cfg.SettlementShards > 1000 {
		return cfg, fmt.Errorf("config: SETTLEMENT_SHARDS must be 1 to 1000, got %d", cfg.SettlementShards)
	}
	if cfg.CommitGroups <= 0 {
		return Config{}, fmt.Errorf("COMMIT_GROUPS must be positive, got %d", cfg.CommitGroups)
	}
	if cfg.CommitQueueMax <= 0 || cfg.CommitWaitMax <= 0 {
		return Config{}, fmt.Errorf("COMMIT_QUEUE_MAX and COMMIT_WAIT_MAX must be positive, got %d and %s",
			cfg.CommitQueueMax, cfg.CommitWaitMax)
	}
	if cfg.ComplaintWindow <= 0 || cfg.ComplaintTAT <= 0 {
		return Config{}, fmt.Errorf("COMPLAINT_WINDOW and COMPLAINT_TAT must be positive")
	}
	if cfg.RefundWindow <= 0 {
		return Config{}, fmt.Errorf("REFUND_WINDOW must be positive, got %s", cfg.RefundWindow)
	}
	if cfg.mandatePeak, err = domain.ParsePeakWindows(cfg.MandatePeakWindows); err != nil {
		return cfg, fmt.Errorf("config: MANDATE_PEAK_WINDOWS: %w", err)
	}
	if cfg.MandateNotice < 0 || cfg.MandateNoAuthLimit < 0 || cfg.MandateRetries < 0 || cfg.MandateRetryInterval <= 0 ||
		cfg.MandateApprovalWait <= 0 || cfg.MandateRequestExpiry <= 0 {
		return cfg, fmt.Errorf("config: MANDATE_NOTICE, MANDATE_NO_AUTH_LIMIT_PAISE and MANDATE_RETRIES must be 0 or positive, " +
			"MANDATE_RETRY_INTERVAL, MANDATE_DEBIT_APPROVAL_WAIT and MANDATE_REQUEST_EXPIRY positive")
	}
	if cfg.LimitDailyPaise < 0 || cfg.LimitDailyP2PCount < 0 || cfg.LimitNewAccountPaise < 0 {
		return cfg, fmt.Errorf("config: LIMIT_DAILY_PAISE, LIMIT_DAILY_P2P_COUNT and LIMIT_NEW_ACCOUNT_PAISE must be 0 (off) or positive")
	}
	return cfg, nil
}

// Mandates are the mandates' rules as the service takes them.
func (c Config) Mandates() app.MandateSettings {
	return app.MandateSettings{RequestExpiry: c.MandateRequestExpiry, Rules: domain.MandateRules{
		Notice: c.MandateNotice, NoAuthLimitPaise: c.MandateNoAuthLimit, Retries: c.MandateRetries,
		RetryInterval: c.MandateRetryInterval, ApprovalWait: c.MandateApprovalWait, Peak: c.mandatePeak}}
}

// webhookSecretKey is WEBHOOK_SECRET_KEY: the development default when unset in development mode;
// elsewhere it must be set, not a default, and at least 32 characters.
func webhookSecretKey(check *secrets.Check, development bool, key string) string {
	if key == "" && development {
		return webhook.DevSecretKey
	}
	check.Secret("WEBHOOK_SECRET_KEY", key)
	if key == webhook.DevSecretKey || (key != "" && len(key) < 32) {
		check.Failf("WEBHOOK_SECRET_KEY must be a secret of your own, at least 32 characters")
	}
	return key
}

// Limits are the payer limits as the domain takes them.
func (c Config) Limits() domain.Limits {
	return domain.Limits{DailyPaise: money.Paise(c.LimitDailyPaise), DailyP2PCount: c.LimitDailyP2PCount,
		NewAccountPaise: money.Paise(c.LimitNewAccountPaise)}
}

// MoneyTerms are the rules of money entering and leaving, as the app takes them.
func (c Config) MoneyTerms() app.MoneyTerms {
	return app.MoneyTerms{DepositDailyCap: money.Paise(c.DepositDailyCapPaise), SettlementShards: c.SettlementShards}
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
		slog.Int64("payment_max_paise", c.PaymentMaxPaise),
		slog.Int64("deposit_max_paise", c.DepositMaxPaise),
		slog.Int64("limit_daily_paise", c.LimitDailyPaise),
		slog.Int("limit_daily_p2p_count", c.LimitDailyP2PCount),
		slog.Int64("limit_new_account_paise", c.LimitNewAccountPaise),
		slog.String("log_level", c.LogLevel),
		slog.Int("commit_groups", c.CommitGroups),
		slog.Int64("deposit_daily_cap_paise", c.DepositDailyCapPaise),
		slog.Int("settlement_shards", c.SettlementShards),
		slog.Int("commit_queue_max", c.CommitQueueMax),
		slog.String("commit_wait_max", c.CommitWaitMax.String()),
	)
}
