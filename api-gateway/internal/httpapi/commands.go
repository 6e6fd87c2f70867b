package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"upi/api-gateway/internal/downstream"
	"upi/api-gateway/internal/idempotency"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// validator decodes and validates a command's body at the edge, before anything is claimed or sent, and
// returns its fingerprint, made from the decoded request (idempotency.Canonical): the body is parsed once.
type validator func(w http.ResponseWriter, r *http.Request) (fingerprint string, p *problem.Problem)

func (s *server) openAccount(w http.ResponseWriter, r *http.Request) {
	s.command(w, r, func(w http.ResponseWriter, r *http.Request) (string, *problem.Problem) {
		var req contract.OpenAccountRequest
		if p := httpjson.Decode(w, r, &req); p != nil {
			return "", p
		}
		if _, p := req.Validate(); p != nil {
			return "", p
		}
		return openAccountFingerprint(req), nil
	})
}

func (s *server) deposit(w http.ResponseWriter, r *http.Request) {
	s.command(w, r, func(w http.ResponseWriter, r *http.Request) (string, *problem.Problem) {
		var req contract.DepositRequest
		if p := httpjson.Decode(w, r, &req); p != nil {
			return "", p
		}
		if _, p := req.Validate(pathVPA(r), s.Limits); p != nil {
			return "", p
		}
		return depositFingerprint(req), nil
	})
}

func (s *server) pay(w http.ResponseWriter, r *http.Request) {
	s.command(w, r, func(w http.ResponseWriter, r *http.Request) (string, *problem.Problem) {
		var req contract.PaymentRequest
		if p := httpjson.Decode(w, r, &req); p != nil {
			return "", p
		}
		if _, p := req.Validate(s.Limits); p != nil {
			return "", p
		}
		return paymentFingerprint(req), nil
	})
}

func (s *server) refund(w http.ResponseWriter, r *http.Request) {
	s.command(w, r, func(w http.ResponseWriter, r *http.Request) (string, *problem.Problem) {
		var req contract.RefundRequest
		if p := httpjson.Decode(w, r, &req); p != nil {
			return "", p
		}
		if _, p := req.Validate(chi.URLParam(r, "payment_id"), s.Limits); p != nil {
			return "", p
		}
		return refundFingerprint(req), nil
	})
}

func (s *server) requestCollect(w http.ResponseWriter, r *http.Request) {
	s.command(w, r, func(w http.ResponseWriter, r *http.Request) (string, *problem.Problem) {
		var req contract.CollectRequestBody
		if p := httpjson.Decode(w, r, &req); p != nil {
			return "", p
		}
		if _, p := req.Validate(s.Limits); p != nil {
			return "", p
		}
		return collectFingerprint(req), nil
	})
}

// answerCollect is approve and decline: no body (or an empty object), a collect id in the path.
func (s *server) answerCollect(w http.ResponseWriter, r *http.Request) {
	s.command(w, r, func(w http.ResponseWriter, r *http.Request) (string, *problem.Problem) {
		if _, err := uuid.Parse(chi.URLParam(r, "collect_id")); err != nil {
			return "", problem.New(http.StatusNotFound, problem.CodeCollectNotFound, "no such collect request")
		}
		raw, err := io.ReadAll(io.LimitReader(r.Body, contract.MaxBodyBytes+1))
		if err != nil {
			return "", problem.New(http.StatusBadRequest, problem.CodeMalformedJSON, "the body could not be read")
		}
		if len(bytes.TrimSpace(raw)) > 0 {
			var req struct{}
			r.Body = io.NopCloser(bytes.NewReader(raw))
			if p := httpjson.Decode(w, r, &req); p != nil {
				return "", p
			}
		}
		var c idempotency.Canonical
		return c.Fingerprint(), nil
	})
}

// The fingerprints of the commands' bodies: every field of the request, as decoded, in ascending key
// order. A field added to a request must be added here (TestFingerprintsCoverEveryField fails until it is).

func openAccountFingerprint(req contract.OpenAccountRequest) string {
	var c idempotency.Canonical
	c.String("holder_name", req.HolderName)
	c.String("mcc", req.MCC)
	c.String("type", req.Type)
	c.String("vpa", req.VPA)
	return c.Fingerprint()
}

func depositFingerprint(req contract.DepositRequest) string {
	var c idempotency.Canonical
	c.Int("amount_paise", req.AmountPaise)
	c.String("reference", req.Reference)
	return c.Fingerprint()
}

func paymentFingerprint(req contract.PaymentRequest) string {
	var c idempotency.Canonical
	c.Int("amount_paise", req.AmountPaise)
	c.String("note", req.Note)
	c.String("payee_vpa", req.PayeeVPA)
	c.String("payer_vpa", req.PayerVPA)
	return c.Fingerprint()
}

func refundFingerprint(req contract.RefundRequest) string {
	var c idempotency.Canonical
	c.Int("amount_paise", req.AmountPaise)
	c.String("reason", req.Reason)
	return c.Fingerprint()
}

func collectFingerprint(req contract.CollectRequestBody) string {
	var c idempotency.Canonical
	c.Int("amount_paise", req.AmountPaise)
	c.Int("expires_in_seconds", req.ExpiresInSeconds)
	c.String("note", req.Note)
	c.String("payee_vpa", req.PayeeVPA)
	c.String("payer_vpa", req.PayerVPA)
	return c.Fingerprint()
}

// command runs a POST: key check, validation, then the rate limit and the idempotency claim in one Redis
// round trip, the call to the command service, and storing its outcome against the key in one more.
func (s *server) command(w http.ResponseWriter, r *http.Request, validate validator) {
	ctx := r.Context()
	key := r.Header.Get(contract.HeaderIdempotencyKey)
	if err := contract.CheckIdempotencyKey(key); err != nil {
		s.refuse(w, r, problem.New(http.StatusBadRequest, problem.CodeIdempotencyKeyRequired, err.Error()))
		return
	}
	// The body is forwarded as the client sent it; the tee keeps the bytes the strict decoder read.
	var raw bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= contract.MaxBodyBytes {
		raw.Grow(int(n))
	}
	r.Body = io.NopCloser(io.TeeReader(r.Body, &raw))
	fp, p := validate(w, r)
	if p != nil {
		s.refuse(w, r, p)
		return
	}
	body := raw.Bytes()

	client := clientID(ctx)
	scope := idempotency.Scope{Client: client, Method: r.Method, Path: r.URL.Path, Key: key}
	rate, out, err := s.Idempotency.Begin(ctx, s.Limiter, limitKey(client), scope, fp)
	if !s.rated(w, rate, s.metrics.rateLimitedBy(client)) {
		return
	}
	switch {
	case errors.Is(err, idempotency.ErrInFlight), errors.Is(err, idempotency.ErrReused):
		s.fail(w, r, err)
		return
	case err != nil:
		// Redis is a fast path, not the guard: the command service derives the effect's id from the same
		// (client, method, path, key) and answers a repeat with the original outcome, so going on without
		// Redis cannot create a second effect (docs/failure-handling.md).
		s.metrics.redisBypass.Inc()
		s.Log.WarnContext(ctx, "idempotency: redis unavailable, relying on the command service's dedupe", "err", err)
	case out.Replay != nil:
		s.metrics.replays.Inc()
		replay(w, out.Replay)
		return
	}
	claim := out.Claim

	h := forwardHeader(r)
	h[headerContentType] = []string{"application/json"}
	h[headerIdempotencyKey] = []string{key}
	// The path is forwarded decoded, like a read's (see query), once validated.
	// A client that hangs up does not cancel its command: the call runs to its own deadline and its
	// outcome is stored, so the client's retry is a cheap replay instead of an unknown.
	resp, err := s.commands.Do(context.WithoutCancel(ctx), downstream.Request{
		Path: r.URL.Path, Header: h, Body: body, Timeout: s.CommandTimeout,
	})
	if err != nil {
		s.release(r, claim)
		s.fail(w, r, err)
		return
	}
	if claim != nil {
		if storable(resp) {
			stored, err := claim.Complete(ctx, idempotency.Response{Status: resp.Status, Header: storedHeaders(resp), Body: resp.Body})
			if err != nil {
				s.Log.WarnContext(ctx, "idempotency: could not store the response; a retry will be deduped by the command service", "err", err)
			} else if !stored {
				s.Log.WarnContext(ctx, "idempotency: claim lost before the response was stored")
			}
		} else {
			s.release(r, claim)
		}
	}
	relay(w, resp)
}

// refuse answers a command refused at the edge (a bad key or body), after checking the client's rate
// limit alone, so that a client over its limit gets 429 whatever it sends, as for any other request.
func (s *server) refuse(w http.ResponseWriter, r *http.Request, p *problem.Problem) {
	if s.allow(w, r) {
		s.fail(w, r, p)
	}
}

func (s *server) release(r *http.Request, claim *idempotency.Claim) {
	if claim == nil {
		return
	}
	if err := claim.Release(r.Context()); err != nil {
		// The claim expires by itself after the lock TTL; until then a retry gets 409 with Retry-After.
		s.Log.WarnContext(r.Context(), "idempotency: could not release the key", "err", err)
	}
}

// storable reports whether a command's answer is its final outcome, to be stored against the key: 2xx
// and business 4xx are; a 5xx is not (the key is released and a retry executes again, safely), nor are
// answers about the request's timing rather than its outcome (in flight, throttled), nor a key-reuse
// refusal from the command service, which is about another body than the one that holds the key.
func storable(resp *downstream.Response) bool {
	switch {
	case resp.Status >= 500, resp.Status == http.StatusRequestTimeout, resp.Status == http.StatusTooManyRequests:
		return false
	case resp.Status < 400:
		return true
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != problem.ContentType {
		return true
	}
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(resp.Body, &p) != nil {
		return true
	}
	switch p.Code {
	case problem.CodeIdempotencyKeyInUse, problem.CodeIdempotencyKeyReused, problem.CodeUnauthenticated,
		problem.CodeDependencyUnavailable, problem.CodeRateLimited:
		return false
	}
	return true
}

// storedHeaders are the headers replayed with a stored response.
func storedHeaders(resp *downstream.Response) map[string]string {
	h := map[string]string{}
	for _, name := range []string{"Content-Type", "Location", "Cache-Control"} {
		if v := resp.Header.Get(name); v != "" {
			h[name] = v
		}
	}
	return h
}

func replay(w http.ResponseWriter, resp *idempotency.Response) {
	h := w.Header()
	for name, v := range resp.Header {
		h.Set(name, v)
	}
	h.Set(contract.HeaderIdempotentReplayed, "true")
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}
