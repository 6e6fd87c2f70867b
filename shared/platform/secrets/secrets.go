// Package secrets is how every service gets its secrets and refuses unsafe ones: the environment with
// Docker's *_FILE convention resolved, the mode (UPI_ENV), and the check that, outside development, no
// secret is a development default or empty.
package secrets

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
)

// ModeVar names the mode. Anything but "development" is production: a deployment that forgets it gets
// every check.
const ModeVar = "UPI_ENV"

// Modes.
const (
	Development = "development"
	Production  = "production"
)

// FileVars are the variables that may be read from a file instead (NAME_FILE): every secret of the
// services. Other *_FILE variables of the environment are not the services' and are left alone.
var FileVars = []string{"API_KEYS", "OPERATOR_KEYS", "SERVICE_KEY", "SERVICE_PEERS", "DATABASE_URL", "REDIS_URL", "RABBITMQ_URL",
	"WEBHOOK_SECRET_KEY"}

// Environ is the process environment as a map, with NAME_FILE read into NAME for every NAME of FileVars
// (the file's content, one trailing newline removed), the convention of Docker secrets. NAME and
// NAME_FILE together is an error: which one is meant would be a guess.
func Environ() (map[string]string, error) {
	env := make(map[string]string)
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return resolveFiles(env)
}

func resolveFiles(env map[string]string) (map[string]string, error) {
	for _, name := range FileVars {
		path := env[name+"_FILE"]
		if path == "" {
			continue
		}
		if _, both := env[name]; both {
			return nil, fmt.Errorf("config: both %s and %s_FILE are set; set one", name, name)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %s_FILE: %w", name, err)
		}
		env[name] = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	return env, nil
}

// Mode reads UPI_ENV from env: production when unset, an error when it is neither mode.
func Mode(env map[string]string) (string, error) {
	switch m := strings.TrimSpace(env[ModeVar]); m {
	case "", Production:
		return Production, nil
	case Development:
		return Development, nil
	default:
		return "", fmt.Errorf("config: %s must be %s or %s, got %q", ModeVar, Production, Development, m)
	}
}

// DevDefaults are the secrets the repository itself ships (.env.example, the defaults of the services and
// of compose, the images' own): known to everyone, so never accepted outside development.
var DevDefaults = []string{
	"alpha-secret", "beta-secret", // API_KEYS
	"dev-operator-secret",                                                                                  // OPERATOR_KEYS
	"upi-dev-password", "upi-command-dev-password", "upi-consumers-dev-password", "upi-query-dev-password", // PostgreSQL, RabbitMQ
	"upi-redis-dev-password",                                       // Redis
	"guest", "admin", "postgres", "password", "changeme", "secret", // the images' own defaults, and the usual guesses
}

// IsDevDefault reports whether s is one of DevDefaults (case-insensitive).
func IsDevDefault(s string) bool {
	return slices.ContainsFunc(DevDefaults, func(d string) bool { return strings.EqualFold(d, s) })
}

// Check collects what makes a configuration unsafe outside development mode.
type Check struct {
	problems []string
}

// Failf records a problem.
func (c *Check) Failf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// Secret checks one secret's value: set, and not a development default.
func (c *Check) Secret(name, value string) {
	switch {
	case strings.TrimSpace(value) == "":
		c.Failf("%s is empty: set it (or %s_FILE)", name, name)
	case IsDevDefault(value):
		c.Failf("%s is a development default: set a secret of your own (or %s_FILE)", name, name)
	}
}

// URLPassword checks the password in a connection URL (postgres://, redis://, amqp:// and their TLS
// forms): present, and not a development default. A PostgreSQL URL that authenticates with a client
// certificate (sslcert=) needs none.
func (c *Check) URLPassword(name, raw string) {
	u, err := url.Parse(raw)
	if err != nil {
		c.Failf("%s does not parse", name)
		return
	}
	pw, _ := u.User.Password()
	if pw == "" && u.Query().Get("password") != "" {
		pw = u.Query().Get("password")
	}
	switch {
	case pw == "" && u.Query().Get("sslcert") != "":
		// client-certificate authentication
	case pw == "":
		c.Failf("%s has no password: give its user a password of its own (or set %s_FILE)", name, name)
	case IsDevDefault(pw):
		c.Failf("%s uses a development default password: change it (or set %s_FILE)", name, name)
	}
}

// Err is nil when nothing was found, else one error that names every problem and what to do, so that the
// operator fixes all of them in one go.
func (c *Check) Err(service string) error {
	if len(c.problems) == 0 {
		return nil
	}
	return errors.New(service + ": refusing to start in " + Production + " mode (" + ModeVar +
		" is not " + Development + "):\n  - " + strings.Join(c.problems, "\n  - ") +
		"\n(for a laptop, set " + ModeVar + "=" + Development + "; never in a deployment)")
}
