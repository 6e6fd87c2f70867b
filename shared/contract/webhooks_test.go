package contract

import (
	"strings"
	"testing"
)

func TestWebhookEndpointRequestValidate(t *testing.T) {
	cases := []struct {
		req       WebhookEndpointRequest
		allowHTTP bool
		ok        bool
	}{
		{WebhookEndpointRequest{URL: "https://example.com/hook"}, false, true},
		{WebhookEndpointRequest{URL: "https://example.com/hook", EventTypes: []string{"payment.*", "refund.completed"}}, false, true},
		{WebhookEndpointRequest{URL: "http://example.com/hook"}, false, false}, // production: https only
		{WebhookEndpointRequest{URL: "http://example.com/hook"}, true, true},
		{WebhookEndpointRequest{URL: "ftp://example.com/hook"}, true, false},
		{WebhookEndpointRequest{URL: "https://user:pw@example.com/"}, false, false},
		{WebhookEndpointRequest{URL: "/relative"}, false, false},
		{WebhookEndpointRequest{URL: ""}, false, false},
		{WebhookEndpointRequest{URL: "https://example.com/" + strings.Repeat("a", 2048)}, false, false},
		{WebhookEndpointRequest{URL: "https://example.com/", EventTypes: []string{"payment.done"}}, false, false},
		{WebhookEndpointRequest{URL: "https://example.com/", EventTypes: []string{"payment.*", "payment.*"}}, false, false},
		{WebhookEndpointRequest{URL: "https://example.com/", Description: strings.Repeat("d", 201)}, false, false},
	}
	for _, c := range cases {
		if p := c.req.Validate(c.allowHTTP); (p == nil) != c.ok {
			t.Errorf("%+v (allow http %v): %v", c.req, c.allowHTTP, p)
		}
	}
}

func TestRedeliveryRequestValidate(t *testing.T) {
	cases := []struct {
		req RedeliveryRequest
		ok  bool
	}{
		{RedeliveryRequest{EventID: "4b0e1f0c-2f7d-4a8e-9d0a-6e1f3c7b2a41"}, true},
		{RedeliveryRequest{From: "2026-12-01T00:00:00Z", To: "2026-12-02T00:00:00Z"}, true},
		{RedeliveryRequest{EventID: "nope"}, false},
		{RedeliveryRequest{}, false},
		{RedeliveryRequest{From: "2026-12-02T00:00:00Z", To: "2026-12-01T00:00:00Z"}, false},
		{RedeliveryRequest{EventID: "4b0e1f0c-2f7d-4a8e-9d0a-6e1f3c7b2a41", From: "2026-12-01T00:00:00Z"}, false},
	}
	for _, c := range cases {
		if _, p := c.req.Validate(); (p == nil) != c.ok {
			t.Errorf("%+v: %v", c.req, p)
		}
	}
	neg, big := int64(-1), int64(8*24*3600)
	for _, s := range []*int64{&neg, &big} {
		if _, p := (&RotateSecretRequest{OverlapSeconds: s}).Overlap(); p == nil {
			t.Errorf("overlap %d accepted", *s)
		}
	}
	if d, p := (&RotateSecretRequest{}).Overlap(); p != nil || d != DefaultRotationOverlap {
		t.Errorf("default overlap: %s %v", d, p)
	}
}
