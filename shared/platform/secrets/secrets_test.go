package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestModeIsProductionUnlessDevelopment(t *testing.T) {
	for in, want := range map[string]string{"": Production, "production": Production, "development": Development} {
		if got, err := Mode(map[string]string{ModeVar: in}); err != nil || got != want {
			t.Errorf("Mode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := Mode(map[string]string{ModeVar: "dev"}); err == nil {
		t.Error("UPI_ENV=dev accepted (a typo must not be a mode)")
	}
}

func TestSecretsFromFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db_url")
	if err := os.WriteFile(path, []byte("postgres://u:p@h/db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := resolveFiles(map[string]string{"DATABASE_URL_FILE": path, "OTHER_FILE": "/nonexistent"})
	if err != nil || env["DATABASE_URL"] != "postgres://u:p@h/db" {
		t.Fatalf("resolveFiles = %v, %v", env, err)
	}
	if _, err := resolveFiles(map[string]string{"DATABASE_URL_FILE": path, "DATABASE_URL": "x"}); err == nil {
		t.Error("both DATABASE_URL and DATABASE_URL_FILE accepted")
	}
	if _, err := resolveFiles(map[string]string{"API_KEYS_FILE": "/nonexistent"}); err == nil {
		t.Error("a missing secret file accepted")
	}
}

func TestCheckRefusesDefaultsAndEmptyPasswords(t *testing.T) {
	for _, tc := range []struct {
		url string
		bad bool
	}{
		{"postgres://postgres@127.0.0.1:5432/upi?sslmode=disable", true},
		{"postgres://upi:upi-dev-password@postgres:5432/upi", true},
		{"amqp://guest:guest@127.0.0.1:5672/", true},
		{"redis://127.0.0.1:6379/0", true},
		{"redis://:upi-redis-dev-password@redis:6379/0", true},
		{"postgres://upi:Zx81-long-and-random@postgres:5432/upi?sslmode=verify-full", false},
		{"rediss://:Zx81-long-and-random@redis:6380/0", false},
		{"postgres://upi@db/upi?sslmode=verify-full&sslcert=/run/secrets/c.crt&sslkey=/run/secrets/c.key", false},
	} {
		var c Check
		c.URLPassword("URL", tc.url)
		if (c.Err("svc") != nil) != tc.bad {
			t.Errorf("%s: refused = %v, want %v", tc.url, c.Err("svc") != nil, tc.bad)
		}
	}
	var c Check
	c.Secret("SERVICE_KEY", "")
	c.Secret("GRAFANA_ADMIN_PASSWORD", "admin")
	err := c.Err("svc")
	if err == nil || !strings.Contains(err.Error(), "SERVICE_KEY is empty") || !strings.Contains(err.Error(), "GRAFANA_ADMIN_PASSWORD is a development default") ||
		!strings.Contains(err.Error(), "UPI_ENV") {
		t.Fatalf("Err = %v", err)
	}
}
