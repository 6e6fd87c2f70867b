package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// webhookRoutes mounts /v1/webhook-endpoints (docs/webhooks.md): writes go to the command service like
// every POST (idempotent by key), reads to the query service.
func (s *server) webhookRoutes(v1 chi.Router) {
	const one = "/webhook-endpoints/{endpoint_id}"
	v1.Post("/webhook-endpoints", s.command(s.createWebhookEndpoint()))
	v1.Post(one+"/disable", s.command(webhookEndpointCommand(func() any { return &struct{}{} })))
	v1.Post(one+"/enable", s.command(webhookEndpointCommand(func() any { return &struct{}{} })))
	v1.Post(one+"/rotate-secret", s.command(webhookEndpointCommand(func() any { return &contract.RotateSecretRequest{} })))
	v1.Post(one+"/redeliveries", s.command(s.redeliver()))
	v1.Delete(one, s.deleteWebhookEndpoint)
	v1.Group(func(r chi.Router) {
		r.Use(s.limit)
		r.Get("/webhook-endpoints", s.listWebhookEndpoints)
		r.Get(one, s.getWebhookEndpoint)
		r.Get(one+"/deliveries", s.listWebhookDeliveries)
	})
}

// webhookFingerprint is the fingerprint of a decoded request whose fields the gateway's Fingerprinter
// does not take (lists, optional numbers): the SHA-256 of its JSON encoding, which is the same for every
// body that decodes to the same request.
func webhookFingerprint(req any) string {
	b, _ := json.Marshal(req)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s *server) createWebhookEndpoint() validator {
	return func(w http.ResponseWriter, r *http.Request) (string, *problem.Problem) {
		var req contract.WebhookEndpointRequest
		if p := httpjson.Decode(w, r, &req); p != nil {
			return "", p
		}
		// http:// or https:// here; the command service, which knows its mode, refuses http:// in production.
		if p := req.Validate(true); p != nil {
			return "", p
		}
		return webhookFingerprint(req), nil
	}
}

func (s *server) redeliver() validator {
	return body(func(req *contract.RedeliveryRequest, r *http.Request) *problem.Problem {
		if p := checkEndpointID(r); p != nil {
			return p
		}
		_, p := req.Validate()
		return p
	})
}

func checkEndpointID(r *http.Request) *problem.Problem {
	if _, err := uuid.Parse(chi.URLParam(r, "endpoint_id")); err != nil {
		return problem.New(http.StatusNotFound, problem.CodeWebhookEndpointNotFound, "no such webhook endpoint")
	}
	return nil
}

// webhookEndpointCommand is the validator of a command on one endpoint whose body is optional (an empty
// body is {}): the endpoint id of the path, and the body strictly decoded into what newBody returns.
func webhookEndpointCommand(newBody func() any) validator {
	return func(w http.ResponseWriter, r *http.Request) (string, *problem.Problem) {
		if p := checkEndpointID(r); p != nil {
			return "", p
		}
		raw, err := io.ReadAll(io.LimitReader(r.Body, contract.MaxBodyBytes+1))
		if err != nil {
			return "", problem.New(http.StatusBadRequest, problem.CodeMalformedJSON, "the body could not be read")
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			raw = []byte("{}")
		}
		req := newBody()
		r.Body = io.NopCloser(bytes.NewReader(raw))
		if p := httpjson.Decode(w, r, req); p != nil {
			return "", p
		}
		if rot, ok := req.(*contract.RotateSecretRequest); ok {
			if _, p := rot.Overlap(); p != nil {
				return "", p
			}
		}
		return webhookFingerprint(req), nil
	}
}

// deleteWebhookEndpoint is DELETE /v1/webhook-endpoints/{id}: the command service's delete command. A
// DELETE is idempotent by nature, so its Idempotency-Key is optional (one per endpoint when absent).
func (s *server) deleteWebhookEndpoint(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(contract.HeaderIdempotencyKey) == "" {
		r.Header.Set(contract.HeaderIdempotencyKey, "delete-"+chi.URLParam(r, "endpoint_id"))
	}
	r.URL.Path += "/delete"
	s.command(webhookEndpointCommand(func() any { return &struct{}{} }))(w, r)
}

func (s *server) listWebhookEndpoints(w http.ResponseWriter, r *http.Request) {
	s.query(w, r, nil, queryParams{limit: true, cursor: true})
}

func (s *server) getWebhookEndpoint(w http.ResponseWriter, r *http.Request) {
	if p := checkEndpointID(r); p != nil {
		s.fail(w, r, p)
		return
	}
	s.query(w, r, nil, queryParams{})
}

func (s *server) listWebhookDeliveries(w http.ResponseWriter, r *http.Request) {
	if p := checkEndpointID(r); p != nil {
		s.fail(w, r, p)
		return
	}
	s.query(w, r, nil, queryParams{limit: true, cursor: true})
}
