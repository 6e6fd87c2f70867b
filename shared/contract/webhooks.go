package contract

import (
	"net/url"
	"strings"
	"time"

	"upi/shared/contract/problem"
	"upi/shared/contract/webhook"
)

// PathWebhookEndpoints is the collection of a client's webhook endpoints (docs/webhooks.md).
const PathWebhookEndpoints = "/v1/webhook-endpoints"

// Webhook endpoint statuses.
const (
	WebhookEnabled  = "ENABLED"
	WebhookDisabled = "DISABLED"
)

// Webhook delivery states.
const (
	DeliveryPending   = "PENDING"
	DeliverySucceeded = "SUCCEEDED"
	DeliveryFailed    = "FAILED"
)

// Bounds of webhook requests.
const (
	maxWebhookURL         = 2048
	maxWebhookDescription = 200
	// MaxRotationOverlap bounds how long the previous secret keeps signing after a rotation.
	MaxRotationOverlap = 7 * 24 * time.Hour
	// DefaultRotationOverlap is the overlap when the request names none.
	DefaultRotationOverlap = 24 * time.Hour
)

// WebhookEndpointRequest is the body of POST /v1/webhook-endpoints.
type WebhookEndpointRequest struct {
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description"`
}

// Validate checks the request; allowHTTP (development mode) accepts http:// URLs beside https://. The
// target's address is checked when the sender connects, not here (docs/webhooks.md, "Safety").
func (r *WebhookEndpointRequest) Validate(allowHTTP bool) *problem.Problem {
	var errs []problem.FieldError
	if msg := CheckWebhookURL(r.URL, allowHTTP); msg != "" {
		errs = append(errs, problem.FieldError{Field: "url", Message: msg})
	}
	seen := map[string]bool{}
	for _, t := range r.EventTypes {
		if !webhook.ValidFilter(t) {
			errs = append(errs, problem.FieldError{Field: "event_types",
				Message: "unknown event type " + quote(t) + " (a type such as payment.completed, payment.* or *)"})
		} else if seen[t] {
			errs = append(errs, problem.FieldError{Field: "event_types", Message: "event type " + quote(t) + " is listed twice"})
		}
		seen[t] = true
	}
	if len(r.Description) > maxWebhookDescription {
		errs = append(errs, problem.FieldError{Field: "description", Message: "description must be at most 200 characters"})
	}
	if len(errs) > 0 {
		return problem.Validation(errs...)
	}
	return nil
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return `"` + s + `"`
}

// CheckWebhookURL says what is wrong with a webhook URL ("" when nothing): absolute, https (or http when
// allowHTTP), a host, no user info or fragment, at most 2048 characters.
func CheckWebhookURL(raw string, allowHTTP bool) string {
	if raw == "" || len(raw) > maxWebhookURL {
		return "url must be 1 to 2048 characters"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return "url must be an absolute URL with a host"
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	case u.Scheme == "http":
		return "url must use https"
	default:
		return "url must use https (or http in development mode)"
	}
	if u.User != nil || u.Fragment != "" {
		return "url must not carry user info or a fragment"
	}
	return ""
}

// WebhookEndpoint is the webhook endpoint resource. Secret is present only in the answers of its creation
// and of a secret rotation: it is shown once.
type WebhookEndpoint struct {
	EndpointID     string   `json:"endpoint_id"`
	URL            string   `json:"url"`
	Description    string   `json:"description"`
	EventTypes     []string `json:"event_types"`
	Status         string   `json:"status"`
	DisabledReason *string  `json:"disabled_reason"`
	Secret         string   `json:"secret,omitempty"`
	// PreviousSecretExpiresAt is when the previous secret stops signing, during a rotation's overlap.
	PreviousSecretExpiresAt *string `json:"previous_secret_expires_at"`
	CreatedAt               string  `json:"created_at"`
	UpdatedAt               string  `json:"updated_at"`
}

// WebhookEndpointPage is one page of a client's endpoints, oldest first.
type WebhookEndpointPage struct {
	Items      []WebhookEndpoint `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// RotateSecretRequest is the body of POST /v1/webhook-endpoints/{id}/rotate-secret: how long the previous
// secret keeps signing beside the new one (0 to 7 days; default 24 hours).
type RotateSecretRequest struct {
	OverlapSeconds *int64 `json:"overlap_seconds"`
}

// Overlap validates the request and returns the overlap.
func (r *RotateSecretRequest) Overlap() (time.Duration, *problem.Problem) {
	if r.OverlapSeconds == nil {
		return DefaultRotationOverlap, nil
	}
	d := time.Duration(*r.OverlapSeconds) * time.Second
	if *r.OverlapSeconds < 0 || d > MaxRotationOverlap {
		return 0, problem.Validation(problem.FieldError{Field: "overlap_seconds", Message: "overlap_seconds must be 0 to 604800"})
	}
	return d, nil
}

// RedeliveryRequest is the body of POST /v1/webhook-endpoints/{id}/redeliveries: one event (event_id), or
// every event delivered to the endpoint whose time is in [from, to).
type RedeliveryRequest struct {
	EventID string `json:"event_id,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
}

// Redelivery is what a RedeliveryRequest asks for, validated.
type Redelivery struct {
	EventID  string
	From, To time.Time
}

// Validate checks that the request names exactly one event or one time range.
func (r *RedeliveryRequest) Validate() (Redelivery, *problem.Problem) {
	bad := func(field, msg string) (Redelivery, *problem.Problem) {
		return Redelivery{}, problem.Validation(problem.FieldError{Field: field, Message: msg})
	}
	if r.EventID != "" {
		if r.From != "" || r.To != "" {
			return bad("event_id", "give event_id, or from and to, not both")
		}
		if !isUUID(r.EventID) {
			return bad("event_id", "event_id must be a UUID")
		}
		return Redelivery{EventID: strings.ToLower(r.EventID)}, nil
	}
	from, err := time.Parse(time.RFC3339, r.From)
	if err != nil {
		return bad("from", "from must be an RFC 3339 time (or give event_id)")
	}
	to, err := time.Parse(time.RFC3339, r.To)
	if err != nil {
		return bad("to", "to must be an RFC 3339 time")
	}
	if !to.After(from) {
		return bad("to", "to must be after from")
	}
	return Redelivery{From: from, To: to}, nil
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// RedeliveryAnswer is the answer of a redelivery request: how many deliveries were queued.
type RedeliveryAnswer struct {
	Queued int `json:"queued"`
}

// WebhookAttempt is one attempt of a delivery.
type WebhookAttempt struct {
	At              string  `json:"at"`
	StatusCode      *int    `json:"status_code"`
	Error           *string `json:"error"`
	LatencyMS       int     `json:"latency_ms"`
	ResponseExcerpt string  `json:"response_excerpt"`
}

// WebhookDelivery is one delivery of an event to an endpoint, with its attempts, oldest first.
type WebhookDelivery struct {
	DeliveryID    string           `json:"delivery_id"`
	EventID       string           `json:"event_id"`
	EventType     string           `json:"event_type"`
	ResourceID    string           `json:"resource_id"`
	Redelivery    bool             `json:"redelivery"`
	Status        string           `json:"status"`
	NextAttemptAt *string          `json:"next_attempt_at"`
	CreatedAt     string           `json:"created_at"`
	Attempts      []WebhookAttempt `json:"attempts"`
}

// WebhookDeliveryPage is one page of an endpoint's deliveries, newest first.
type WebhookDeliveryPage struct {
	Items      []WebhookDelivery `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}
