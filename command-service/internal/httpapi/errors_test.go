package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"upi/command-service/internal/app"
	"upi/command-service/internal/domain"
	"upi/shared/contract/problem"
	"upi/shared/platform/eventstore"
)

// Every error the domain and the app can return reaches a deliberate case of the map; a database failure,
// whatever the driver says, is a 503.
func TestErrorMapAnswersEveryKnownError(t *testing.T) {
	h := &handlers{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{domain.ErrAccountExists, 409, problem.CodeAccountExists},
		{domain.ErrAccountNotFound, 404, problem.CodeAccountNotFound},
		{domain.ErrPaymentExists, 422, problem.CodeIdempotencyKeyReused},
		{domain.ErrPaymentNotFound, 404, problem.CodePaymentNotFound},
		{domain.ErrPaymentTerminal, 409, problem.CodePaymentTerminal},
		{domain.ErrInvalidAmount, 400, problem.CodeValidation},
		{domain.ErrInvalidAccount, 400, problem.CodeValidation},
		{domain.ErrBalanceLimit, 422, problem.CodeValidation},
		{domain.ErrWrongAccount, 400, problem.CodeValidation},
		{domain.ErrCorruptStream, 500, problem.CodeInternal},
		{app.ErrIdempotencyKeyReused, 422, problem.CodeIdempotencyKeyReused},
		{app.ErrPayeeNotFound, 422, problem.CodePayeeNotFound},
		{app.ErrStepPrecondition, 409, problem.CodeStepPrecondition},
		{app.ErrUnavailable, 503, problem.CodeDependencyUnavailable},
		{errors.New("something nobody expected"), 500, problem.CodeInternal},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		p := h.problem(r, fmt.Errorf("op: %w", c.err))
		if p.Status != c.status || p.Code != c.code {
			t.Errorf("%v: got %d %s, want %d %s", c.err, p.Status, p.Code, c.status, c.code)
		}
	}
}

// The store translates the driver's failures; the map sees only ErrUnavailable.
func TestDatabaseFailuresAreUnavailable(t *testing.T) {
	for _, err := range []error{
		&pgconn.PgError{Code: "57P01"}, // admin_shutdown
		&pgconn.PgError{Code: "08006"}, // connection_failure
		&pgconn.PgError{Code: "57P03"}, // cannot_connect_now (starting up)
		context.DeadlineExceeded,
		io.ErrUnexpectedEOF,
	} {
		got := eventstore.MarkUnavailable(err)
		if !errors.Is(got, app.ErrUnavailable) {
			t.Errorf("%v is not marked unavailable", err)
		}
	}
	if errors.Is(eventstore.MarkUnavailable(&pgconn.PgError{Code: "23505"}), app.ErrUnavailable) {
		t.Error("a unique violation is not an outage")
	}
}
