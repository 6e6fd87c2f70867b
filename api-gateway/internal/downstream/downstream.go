// Package downstream calls the command and query services: one tuned HTTP client, a deadline on every
// call, and transport failures turned into two errors the gateway answers quickly (503 or 504).
package downstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Errors of Do. Both mean no usable answer came back; for a write, the effect may or may not have
// happened, which is safe because the command service dedupes a retry by its idempotency key.
var (
	// ErrUnavailable: the service could not be reached or broke the connection.
	ErrUnavailable = errors.New("downstream service unavailable")
	// ErrTimeout: the service did not answer within the call's deadline.
	ErrTimeout = errors.New("downstream service did not answer in time")
)

// maxResponseBytes bounds what the gateway buffers from a service (the largest page is well under it).
const maxResponseBytes = 4 << 20

// Service is one downstream service.
type Service struct {
	Name    string
	BaseURL string
}

// Request is one call. Path is the escaped path and query, as the public request had them.
type Request struct {
	Method  string
	Path    string
	Header  http.Header
	Body    []byte
	Timeout time.Duration
}

// Response is a service's full answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Client calls the services.
type Client struct {
	http     *http.Client
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

// NewClient returns a Client with one pooled transport for all calls and registers its metrics.
func NewClient(reg prometheus.Registerer) *Client {
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	c := &Client{
		// No client-wide timeout: each call carries its own deadline in its context.
		http: &http.Client{Transport: transport},
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_downstream_duration_seconds",
			Help:    "Duration of calls to downstream services, by service, method and status (or error).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service", "method", "status"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_downstream_errors_total",
			Help: "Calls to downstream services that gave no answer, by service and kind (unavailable, timeout).",
		}, []string{"service", "kind"}),
	}
	reg.MustRegister(c.duration, c.errors)
	return c
}

// Do calls svc and returns its answer, whatever the status, or ErrUnavailable / ErrTimeout. If ctx itself
// ends first (the client went away), ctx's error is returned.
func (c *Client) Do(ctx context.Context, svc Service, r Request) (*Response, error) {
	cctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(cctx, r.Method, svc.BaseURL+r.Path, body)
	if err != nil {
		return nil, fmt.Errorf("build request to %s: %w", svc.Name, err)
	}
	req.Header = r.Header

	start := time.Now()
	resp, err := c.http.Do(req)
	if err == nil {
		defer resp.Body.Close()
		var b []byte
		b, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
		if err == nil && len(b) > maxResponseBytes {
			err = fmt.Errorf("response larger than %d bytes", maxResponseBytes)
		}
		if err == nil && resp.StatusCode >= 400 && !isProblem(resp.Header) {
			// Every service answers errors as problem+json; anything else came from below the service
			// (a proxy, or net/http refusing a malformed request) and is no answer to relay.
			err = fmt.Errorf("answered %d with Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if err == nil {
			c.duration.WithLabelValues(svc.Name, r.Method, strconv.Itoa(resp.StatusCode)).Observe(time.Since(start).Seconds())
			return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	kind, sentinel := "unavailable", ErrUnavailable
	if errors.Is(cctx.Err(), context.DeadlineExceeded) {
		kind, sentinel = "timeout", ErrTimeout
	}
	c.duration.WithLabelValues(svc.Name, r.Method, kind).Observe(time.Since(start).Seconds())
	c.errors.WithLabelValues(svc.Name, kind).Inc()
	return nil, fmt.Errorf("%w: %s %s %s: %w", sentinel, svc.Name, r.Method, r.Path, err)
}

func isProblem(h http.Header) bool {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return mt == "application/problem+json"
}
