package observability

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"upi/shared/platform/keyring"
)

func TestReadyzOptionalCheckReportedWithoutFailingReadiness(t *testing.T) {
	down := func(context.Context) error { return errors.New("down") }
	up := func(context.Context) error { return nil }
	for _, tc := range []struct {
		name   string
		checks []Check
		status int
		body   string
	}{
		{"optional down", []Check{{Name: "db", Ping: up}, {Name: "broker", Ping: down, Optional: true}}, 200, "ready"},
		{"required down", []Check{{Name: "db", Ping: down}, {Name: "broker", Ping: up, Optional: true}}, 503, "unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewOpsRouter(OpsConfig{Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Registry: prometheus.NewRegistry(), Checks: tc.checks, Operators: keyring.New(nil)}).Router
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			var body struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.status || body.Status != tc.body {
				t.Fatalf("readyz = %d %s", w.Code, w.Body)
			}
			for _, c := range tc.checks {
				want := "ok"
				if c.Ping(context.Background()) != nil {
					want = "unavailable"
				}
				if body.Checks[c.Name] != want {
					t.Errorf("check %s = %q, want %q", c.Name, body.Checks[c.Name], want)
				}
			}
		})
	}
}
