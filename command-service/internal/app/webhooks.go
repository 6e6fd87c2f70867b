package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"upi/shared/contract"
	"upi/shared/contract/ids"
	"upi/shared/contract/webhook"
)

// Webhook endpoints (docs/webhooks.md) are a client's delivery settings, kept in a table of their own
// rather than in the log: they are not part of the ledger, nothing is decided on them, and the delivery
// system itself changes them (an endpoint that keeps failing is disabled). Their secrets are in neither:
// each is derived from the installation's key (webhook.Secret), so only a version number is stored.

// ErrWebhookEndpointNotFound: no such endpoint of the caller's (another client's looks the same).
var ErrWebhookEndpointNotFound = errors.New("webhook endpoint not found")

// WebhookEndpointRow is an endpoint as stored.
type WebhookEndpointRow struct {
	EndpointID              uuid.UUID
	ClientID                string
	URL                     string
	Description             string
	EventTypes              []string
	Status                  string
	DisabledReason          *string
	SecretVersion           int
	PreviousSecretExpiresAt *time.Time
	CreatedAt, UpdatedAt    time.Time
}

// WebhookStore keeps the endpoints (adapters/postgres). Every method acts only on the client's own
// endpoints and answers ErrWebhookEndpointNotFound for any other, or a deleted one.
type WebhookStore interface {
	// Create inserts the endpoint unless its id exists, and returns the stored row.
	Create(ctx context.Context, row WebhookEndpointRow) (WebhookEndpointRow, error)
	SetStatus(ctx context.Context, client string, id uuid.UUID, status string) (WebhookEndpointRow, error)
	// Rotate makes a new secret version unless rotation already made one, keeping the previous version
	// for overlap, and returns the row and the version the rotation made.
	Rotate(ctx context.Context, client string, id, rotation uuid.UUID, overlap time.Duration) (WebhookEndpointRow, int, error)
	// Redeliver queues a new delivery of each event first delivered to the endpoint that r names.
	Redeliver(ctx context.Context, client string, id uuid.UUID, r contract.Redelivery) (int, error)
}

// Webhooks manages a client's webhook endpoints.
type Webhooks struct {
	store     WebhookStore
	secretKey string
	allowHTTP bool
}

// NewWebhooks returns the endpoints' commands; secretKey is WEBHOOK_SECRET_KEY, allowHTTP development mode.
func NewWebhooks(store WebhookStore, secretKey string, allowHTTP bool) *Webhooks {
	return &Webhooks{store: store, secretKey: secretKey, allowHTTP: allowHTTP}
}

// AllowHTTP reports whether http:// endpoints are accepted (development mode).
func (w *Webhooks) AllowHTTP() bool { return w.allowHTTP }

// Answer is the endpoint as the API shows it; withSecret adds its current secret (create and rotate only).
func (w *Webhooks) Answer(row WebhookEndpointRow, withSecret bool) contract.WebhookEndpoint {
	out := contract.WebhookEndpoint{
		EndpointID: row.EndpointID.String(), URL: row.URL, Description: row.Description,
		EventTypes: row.EventTypes, Status: row.Status, DisabledReason: row.DisabledReason,
		CreatedAt: contract.Time(row.CreatedAt), UpdatedAt: contract.Time(row.UpdatedAt),
	}
	if out.EventTypes == nil {
		out.EventTypes = []string{}
	}
	if row.PreviousSecretExpiresAt != nil && row.PreviousSecretExpiresAt.After(time.Now()) {
		t := contract.Time(*row.PreviousSecretExpiresAt)
		out.PreviousSecretExpiresAt = &t
	}
	if withSecret {
		out.Secret = webhook.Secret(w.secretKey, out.EndpointID, row.SecretVersion)
	}
	return out
}

// Create registers an endpoint. Its id comes from the client's idempotency key, so a repeat (even past the
// gateway's store) answers the same endpoint and secret; the same key with another request is a reused key.
func (w *Webhooks) Create(ctx context.Context, c Caller, req contract.WebhookEndpointRequest) (contract.WebhookEndpoint, error) {
	id := ids.ClientCommand(c.ClientID, "POST", contract.PathWebhookEndpoints, c.IdempotencyKey)
	types := req.EventTypes
	if types == nil {
		types = []string{}
	}
	row, err := w.store.Create(ctx, WebhookEndpointRow{EndpointID: id, ClientID: c.ClientID, URL: req.URL,
		Description: req.Description, EventTypes: types, Status: contract.WebhookEnabled, SecretVersion: 1})
	if err != nil {
		return contract.WebhookEndpoint{}, err
	}
	if row.ClientID != c.ClientID || row.URL != req.URL || row.Description != req.Description || !slices.Equal(row.EventTypes, types) {
		return contract.WebhookEndpoint{}, fmt.Errorf("endpoint %s: %w", id, ErrIdempotencyKeyReused)
	}
	return w.Answer(row, true), nil
}

// SetStatus enables or disables an endpoint (enabling clears why it was disabled and its failure run).
func (w *Webhooks) SetStatus(ctx context.Context, c Caller, id uuid.UUID, status string) (contract.WebhookEndpoint, error) {
	row, err := w.store.SetStatus(ctx, c.ClientID, id, status)
	if err != nil {
		return contract.WebhookEndpoint{}, err
	}
	return w.Answer(row, false), nil
}

// Delete deletes an endpoint: nothing more is delivered to it and it is no longer listed.
func (w *Webhooks) Delete(ctx context.Context, c Caller, id uuid.UUID) error {
	_, err := w.store.SetStatus(ctx, c.ClientID, id, "DELETED")
	return err
}

// RotateSecret gives the endpoint a new secret; the previous one keeps signing beside it for overlap.
// The rotation's id comes from the client's key, so a repeat answers the same new secret.
func (w *Webhooks) RotateSecret(ctx context.Context, c Caller, id uuid.UUID, path string, overlap time.Duration) (contract.WebhookEndpoint, error) {
	rotation := ids.ClientCommand(c.ClientID, "POST", path, c.IdempotencyKey)
	row, version, err := w.store.Rotate(ctx, c.ClientID, id, rotation, overlap)
	if err != nil {
		return contract.WebhookEndpoint{}, err
	}
	out := w.Answer(row, false)
	out.Secret = webhook.Secret(w.secretKey, out.EndpointID, version)
	return out, nil
}

// Redeliver queues again the deliveries r names.
func (w *Webhooks) Redeliver(ctx context.Context, c Caller, id uuid.UUID, r contract.Redelivery) (contract.RedeliveryAnswer, error) {
	n, err := w.store.Redeliver(ctx, c.ClientID, id, r)
	return contract.RedeliveryAnswer{Queued: n}, err
}
