package httpapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"upi/query-service/internal/app"
)

// A database outage is a 503 the client may retry; an error nobody expected is a 500, not a 503 that
// would have clients retrying a defect forever.
func TestFailAnswersOutagesAndDefectsDifferently(t *testing.T) {
	h := &Handler{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cases := []struct {
		err    error
		status int
	}{
		{fmt.Errorf("read account: %w", app.ErrAccountNotFound), http.StatusNotFound},
		{fmt.Errorf("read account: %w", app.ErrUnavailable), http.StatusServiceUnavailable},
		{errors.New("cannot scan NULL into *string"), http.StatusInternalServerError},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		h.fail(w, httptest.NewRequest(http.MethodGet, "/", nil), c.err)
		if w.Code != c.status || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%v: got %d %q, want %d problem+json", c.err, w.Code, w.Header().Get("Content-Type"), c.status)
		}
	}
}
