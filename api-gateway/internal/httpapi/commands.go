package httpapi

import (
	"bytes"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"upi/api-gateway/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
	"upi/shared/platform/observability"
)

// validator decodes and validates a command's body at the edge, before anything is claimed or sent, and
// returns its fingerprint, made from the decoded request (app.Fingerprinter): the body is parsed once.
type validator func(w http.ResponseWriter, r *http.Request) (fingerprint string, p *problem.Problem)

// body is the validator of a command whose body is a T, checked by validate (the contract's Validate of
// T, with what the route's path and the limits give it).
func body[T any](validate func(req *T, r *http.Request) *problem.Problem) validator {
	fp := app.NewFingerprinter[T]()
	return func(w http.ResponseWriter, r *http.Request) (string, *problem.Problem) {
		var req T
		if p := httpjson.Decode(w, r, &req); p != nil {
			return "", p
		}
		if p := validate(&req, r); p != nil {
			return "", p
		}
		return fp.Of(&req), nil
	}
}

func (s *server) openAccount() validator {
	return body(func(req *contract.OpenAccountRequest, _ *http.Request) *problem.Problem {
		_, p := req.Validate()
		return p
	})
}

func (s *server) deposit() validator {
	return body(func(req *contract.DepositRequest, r *http.Request) *problem.Problem {
		_, p := req.Validate(pathVPA(r), s.Limits)
		return p
	})
}

func (s *server) withdraw() validator {
	return body(func(req *contract.WithdrawalRequest, r *http.Request) *problem.Problem {
		_, p := req.Validate(pathVPA(r), s.Limits)
		return p
	})
}

func (s *server) pay() validator {
	return body(func(req *contract.PaymentRequest, _ *http.Request) *problem.Problem {
		_, p := req.Validate(s.Limits)
		return p
	})
}

func (s *server) refund() validator {
	return body(func(req *contract.RefundRequest, r *http.Request) *problem.Problem {
		_, p := req.Validate(chi.URLParam(r, "payment_id"), s.Limits)
		return p
	})
}

func (s *server) requestCollect() validator {
	return body(func(req *contract.CollectRequestBody, _ *http.Request) *problem.Problem {
		_, p := req.Validate(s.Limits)
		return p
	})
}

// answerCollect is the validator of approve and decline: no body (or an empty object), a collect id in
// the path.
func answerCollect() validator {
	noBody := app.NewFingerprinter[struct{}]().Of(&struct{}{})
	return func(w http.ResponseWriter, r *http.Request) (string, *problem.Problem) {
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
		return noBody, nil
	}
}

// command serves a POST: key check and validation at the edge, then the application's flow (rate limit and
// idempotency claim, the command service, its outcome stored), whose answer it writes.
func (s *server) command(validate validator) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		// Overload is shed first, before the body is read or Redis asked (and so with no RateLimit headers:
		// the request did not count against the client's limit).
		release, ok := s.App.Admit()
		if !ok {
			s.fail(w, r, app.ErrOverloaded)
			return
		}
		defer release()
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
		client, operator := clientID(ctx), operatorName(ctx)
		who := client
		if operator != "" {
			who = limitKey(ctx)
		}
		// The path is forwarded decoded, like a read's (see query), once validated.
		rate, answer, err := s.App.Command(ctx, app.Command{
			Client: client, Operator: operator, RequestID: observability.RequestID(ctx),
			Method: r.Method, Path: r.URL.Path, Key: key,
			Fingerprint: fp, Body: raw.Bytes(),
		})
		switch {
		case !s.rated(w, rate, s.metrics.rateLimitedBy(who)):
		case err != nil:
			s.fail(w, r, err)
		case answer.Replay != nil:
			replay(w, answer.Replay)
		default:
			relay(w, answer.Response)
		}
	}
}

// refuse answers a command refused at the edge (a bad key or body), after checking the client's rate
// limit alone, so that a client over its limit gets 429 whatever it sends, as for any other request.
func (s *server) refuse(w http.ResponseWriter, r *http.Request, p *problem.Problem) {
	if s.allow(w, r) {
		s.fail(w, r, p)
	}
}
