package webhookhttp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"upi/event-consumers/internal/app/webhooks"
)

func TestPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fc00::1": false, "0.0.0.0": false, "::": false,
		"100.64.0.1": false, "224.0.0.1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false,
		"198.18.0.1": false, "255.255.255.255": false,
	} {
		if got := Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}

// A receiver on loopback is refused at connect time unless private targets are allowed, whatever name the
// URL uses ("localhost" resolves to loopback only when dialled).
func TestLoopbackRefusedAtConnect(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	strict := New(Config{Timeout: 2 * time.Second, AllowHTTP: true})
	resp := strict.Send(context.Background(), webhooks.Request{URL: srv.URL, Body: []byte("{}")})
	if !errors.Is(resp.Err, ErrForbiddenTarget) || hits != 0 {
		t.Fatalf("loopback target: %+v, %d hits", resp, hits)
	}
	open := New(Config{Timeout: 2 * time.Second, AllowHTTP: true, AllowPrivate: true})
	if resp := open.Send(context.Background(), webhooks.Request{URL: srv.URL, Body: []byte("{}")}); resp.Status != 200 || hits != 1 {
		t.Fatalf("allowed: %+v, %d hits", resp, hits)
	}
	prod := New(Config{Timeout: 2 * time.Second, AllowPrivate: true})
	if resp := prod.Send(context.Background(), webhooks.Request{URL: srv.URL, Body: []byte("{}")}); resp.Err == nil || hits != 1 {
		t.Fatalf("http in production: %+v", resp)
	}
}

// A receiver that hangs is cut off at the timeout; a redirect is not followed; Retry-After is read.
func TestTimeoutRedirectRetryAfter(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hang":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/redirect":
			http.Redirect(w, r, "http://169.254.169.254/", http.StatusFound)
		case "/busy":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	c := New(Config{Timeout: 300 * time.Millisecond, AllowHTTP: true, AllowPrivate: true})
	start := time.Now()
	if resp := c.Send(context.Background(), webhooks.Request{URL: srv.URL + "/hang"}); resp.Err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("hang: %+v after %s", resp, time.Since(start))
	}
	if resp := c.Send(context.Background(), webhooks.Request{URL: srv.URL + "/redirect"}); resp.Status != http.StatusFound {
		t.Fatalf("redirect: %+v", resp)
	}
	if resp := c.Send(context.Background(), webhooks.Request{URL: srv.URL + "/busy"}); resp.Status != 503 || resp.RetryAfter != 2*time.Minute {
		t.Fatalf("busy: %+v", resp)
	}
}
