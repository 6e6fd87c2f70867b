// Package webhook is what the senders and the receivers of webhooks agree on (docs/webhooks.md): the
// event types, the headers, the signature and its verification, and how an endpoint's signing secret is
// derived from the installation's key.
//
// A delivery is a POST of a JSON body {"id", "type", "created_at", "data"} with the headers
// UPI-Event-ID (the event id, the same on every attempt and redelivery) and UPI-Signature:
//
//	UPI-Signature: t=1733400000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//
// where v1 is the lower-case hex of HMAC-SHA256(secret, t + "." + body). During a secret rotation's overlap
// the header carries one v1 per secret; a receiver accepts the delivery when any of them verifies with a
// secret it holds and t is within its tolerance of its own clock.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of a delivery.
const (
	HeaderEventID   = "UPI-Event-ID"
	HeaderEventType = "UPI-Event-Type"
	HeaderSignature = "UPI-Signature"
	// HeaderAttempt is the attempt's number, 1 for the first (informational; not signed).
	HeaderAttempt = "UPI-Delivery-Attempt"
)

// DefaultTolerance is how far a signature's timestamp may be from the receiver's clock.
const DefaultTolerance = 5 * time.Minute

// Event types, "<resource>.<state change>".
const (
	PaymentCreated   = "payment.created"
	PaymentCompleted = "payment.completed"
	PaymentFailed    = "payment.failed"

	RefundCreated   = "refund.created"
	RefundCompleted = "refund.completed"
	RefundFailed    = "refund.failed"

	CollectCreated  = "collect_request.created"
	CollectApproved = "collect_request.approved"
	CollectDeclined = "collect_request.declined"
	CollectExpired  = "collect_request.expired"

	WithdrawalCompleted = "withdrawal.completed"
	WithdrawalFailed    = "withdrawal.failed"
)

// Types are every event type, in the order the docs list them.
var Types = []string{
	PaymentCreated, PaymentCompleted, PaymentFailed,
	RefundCreated, RefundCompleted, RefundFailed,
	CollectCreated, CollectApproved, CollectDeclined, CollectExpired,
	WithdrawalCompleted, WithdrawalFailed,
}

// ValidFilter reports whether f names event types an endpoint may subscribe to: one type, every type of
// a resource ("payment.*"), or every type ("*").
func ValidFilter(f string) bool {
	if f == "*" {
		return true
	}
	for _, t := range Types {
		if f == t || f == Resource(t)+".*" {
			return true
		}
	}
	return false
}

// Resource is the resource part of an event type: "payment" of "payment.completed".
func Resource(eventType string) string {
	r, _, _ := strings.Cut(eventType, ".")
	return r
}

// Envelope is a delivery's body.
type Envelope[T any] struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	CreatedAt string `json:"created_at"`
	Data      T      `json:"data"`
}

// Sign is the v1 signature of body at unix time t with secret: hex(HMAC-SHA256(secret, t "." body)).
func Sign(secret string, t int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(strconv.AppendInt(nil, t, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// SignatureHeader is the UPI-Signature value of body at t, with one v1 per secret.
func SignatureHeader(t int64, body []byte, secrets ...string) string {
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(t, 10))
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(Sign(s, t, body))
	}
	return b.String()
}

// Verification failures.
var (
	ErrMalformedHeader = errors.New("webhook: malformed signature header")
	ErrTooOld          = errors.New("webhook: signature timestamp outside the tolerance")
	ErrNoMatch         = errors.New("webhook: no signature matches")
)

// Verify checks a delivery's UPI-Signature header against its raw body, with any of secrets (the current
// one, and the previous one during a rotation), accepting a timestamp within tolerance of now
// (DefaultTolerance when tolerance is 0). The comparison is in constant time.
func Verify(header string, body []byte, secrets []string, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var (
		t     int64
		haveT bool
		sigs  [][]byte
	)
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrMalformedHeader
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return ErrMalformedHeader
			}
			t, haveT = n, true
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil {
				return ErrMalformedHeader
			}
			sigs = append(sigs, sig)
		}
	}
	if !haveT || len(sigs) == 0 {
		return ErrMalformedHeader
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return ErrTooOld
	}
	for _, secret := range secrets {
		want, _ := hex.DecodeString(Sign(secret, t, body))
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return nil
			}
		}
	}
	return ErrNoMatch
}

// Secret is the signing secret of version v of an endpoint, derived from the installation's key
// (WEBHOOK_SECRET_KEY): "whsec_" and the hex of HMAC-SHA256(key, "upi-webhook-secret/v1 " id " " v). Only
// the key is kept; neither the log nor any table holds a secret.
func Secret(key, endpointID string, version int) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte("upi-webhook-secret/v1 " + endpointID + " " + strconv.Itoa(version)))
	return "whsec_" + hex.EncodeToString(mac.Sum(nil))
}

// DevSecretKey is the development mode's WEBHOOK_SECRET_KEY, refused outside development.
const DevSecretKey = "upi-webhook-dev-key"
