package httpapi

import (
	"context"
	"errors"
	"net/http"

	"upi/api-gateway/internal/app"
	"upi/shared/contract/problem"
)

// inFlightRetryAfter is the Retry-After of a 409 IDEMPOTENCY_KEY_IN_USE: a command takes milliseconds,
// so the first request has most likely finished a second later.
const inFlightRetryAfter = 1

// fail is the one place where the gateway's errors become problem+json answers.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var p *problem.Problem
	switch {
	case errors.As(err, &p):
	case errors.Is(err, app.ErrInFlight):
		s.metrics.inFlight.Inc()
		p = problem.New(http.StatusConflict, problem.CodeIdempotencyKeyInUse,
			"a request with this Idempotency-Key is still being processed; retry after the time in Retry-After")
		p.RetryAfter = inFlightRetryAfter
	case errors.Is(err, app.ErrReused):
		s.metrics.reused.Inc()
		p = problem.New(http.StatusUnprocessableEntity, problem.CodeIdempotencyKeyReused,
			"this Idempotency-Key was already used with a different request body")
	case errors.Is(err, app.ErrOverloaded):
		p = problem.Overloaded("too many commands are under way; nothing was done, a retry with the same Idempotency-Key after Retry-After is safe")
	case errors.Is(err, app.ErrTimeout):
		s.Log.WarnContext(r.Context(), "downstream call timed out", "err", err)
		p = problem.New(http.StatusGatewayTimeout, problem.CodeUpstreamTimeout,
			"a service did not answer in time; a retry with the same Idempotency-Key is safe")
	case errors.Is(err, app.ErrUnavailable):
		s.Log.WarnContext(r.Context(), "downstream call failed", "err", err)
		p = problem.Unavailable("a service is unavailable; a retry with the same Idempotency-Key is safe")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer, but the access log shows what happened.
		s.Log.InfoContext(r.Context(), "client cancelled the request", "err", err)
		p = problem.New(http.StatusServiceUnavailable, problem.CodeDependencyUnavailable, "the request was cancelled")
	default:
		s.Log.ErrorContext(r.Context(), "unexpected error", "err", err)
		p = problem.Internal()
	}
	problem.Write(w, p)
}
