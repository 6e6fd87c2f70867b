package app

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"upi/shared/contract"
)

// ErrWebhookEndpointNotFound: no such endpoint of the caller's.
var ErrWebhookEndpointNotFound = errors.New("webhook endpoint not found")

// EndpointCursor is where a page of endpoints ends.
type EndpointCursor struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// WebhookReader reads the webhook tables (adapters/postgres). They are not projections of the log (the
// command service and the sender write them), so their answers carry no projection position.
type WebhookReader interface {
	Endpoint(ctx context.Context, client string, id uuid.UUID) (contract.WebhookEndpoint, bool, error)
	Endpoints(ctx context.Context, client string, after *EndpointCursor, limit int) ([]contract.WebhookEndpoint, *EndpointCursor, error)
	Deliveries(ctx context.Context, endpoint uuid.UUID, before int64, limit int) ([]contract.WebhookDelivery, int64, error)
}

// Webhooks answers a client's reads of its webhook endpoints and deliveries.
type Webhooks struct{ r WebhookReader }

// NewWebhooks returns the reads.
func NewWebhooks(r WebhookReader) *Webhooks { return &Webhooks{r: r} }

// Endpoint is one of client's endpoints; another client's is not found.
func (w *Webhooks) Endpoint(ctx context.Context, client string, id uuid.UUID) (contract.WebhookEndpoint, error) {
	e, found, err := w.r.Endpoint(ctx, client, id)
	if err == nil && !found {
		err = ErrWebhookEndpointNotFound
	}
	return e, err
}

// Endpoints is a page of client's endpoints.
func (w *Webhooks) Endpoints(ctx context.Context, client string, after *EndpointCursor, limit int) ([]contract.WebhookEndpoint, *EndpointCursor, error) {
	return w.r.Endpoints(ctx, client, after, limit)
}

// Deliveries is a page of the deliveries of one of client's endpoints, newest first.
func (w *Webhooks) Deliveries(ctx context.Context, client string, id uuid.UUID, before int64, limit int) ([]contract.WebhookDelivery, int64, error) {
	if _, err := w.Endpoint(ctx, client, id); err != nil {
		return nil, 0, err
	}
	return w.r.Deliveries(ctx, id, before, limit)
}
