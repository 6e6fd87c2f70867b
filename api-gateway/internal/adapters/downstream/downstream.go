// Package downstream calls the command and query services (app.Service): one tuned HTTP client, a deadline
// on every call, and transport failures turned into two errors the gateway answers quickly (503 or 504).
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
	"net/textproto"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upi/api-gateway/internal/app"
	"upi/shared/contract"
	"upi/shared/platform/observability"
	"upi/shared/platform/servicetoken"
)

// maxResponseBytes bounds what the gateway buffers from a service (the largest page is well under it).
const maxResponseBytes = 4 << 20

// Service is one downstream service.
type Service struct {
	Name    string
	BaseURL string
}

// Client calls the services.
type Client struct {
	http     *http.Client
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

// NewClient returns a Client with one pooled transport for all calls and registers its metrics. auth, when
// not nil, wraps the transport with the gateway's service credential (servicetoken.Signer.Transport).
func NewClient(reg prometheus.Registerer, auth func(http.RoundTripper) http.RoundTripper) *Client {
	transport := &http.Transport{
		Proxy:                 nil,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	spread := newSpreadDialer(&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second})
	transport.DialContext, spread.closeIdle = spread.DialContext, transport.CloseIdleConnections
	var rt http.RoundTripper = transport
	if auth != nil {
		rt = auth(transport)
	}
	c := &Client{
		// No client-wide timeout: each call carries its own deadline in its context.
		http: &http.Client{Transport: observability.HTTPTransport(rt)},
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

// Endpoint is one service called with one method (app.Service), its metrics' labels resolved when it is made (and,
// for the status of an answer, the first time that status is seen) rather than on every call.
type Endpoint struct {
	client *Client
	svc    Service
	method string
	label  string // the method label of its metrics

	byStatus [600]atomic.Pointer[observer] // indexed by HTTP status
	timeout  outcome
	unavail  outcome
	// maxResponse bounds an answer's body (maxResponseBytes unless set).
	maxResponse int
}

type observer struct{ prometheus.Observer }

// outcome is a call that gave no answer, by kind (timeout, unavailable).
type outcome struct {
	sentinel error
	duration prometheus.Observer
	errors   prometheus.Counter
}

// Endpoint returns the endpoint for calls of method to svc. Make them when routes are registered.
func (c *Client) Endpoint(svc Service, method string) *Endpoint {
	return c.endpoint(svc, method, method)
}

// endpoint is Endpoint with label as its metrics' method label.
func (c *Client) endpoint(svc Service, method, label string) *Endpoint {
	failed := func(kind string, sentinel error) outcome {
		return outcome{sentinel: sentinel,
			duration: c.duration.WithLabelValues(svc.Name, label, kind), errors: c.errors.WithLabelValues(svc.Name, kind)}
	}
	return &Endpoint{client: c, svc: svc, method: method, label: label, maxResponse: maxResponseBytes,
		timeout: failed("timeout", app.ErrTimeout), unavail: failed("unavailable", app.ErrUnavailable)}
}

// Call calls the endpoint and returns its answer, whatever the status, or an error marked
// app.ErrUnavailable or app.ErrTimeout. If ctx itself ends first (the client went away), ctx's error is
// returned.
func (e *Endpoint) Call(ctx context.Context, c app.Call) (*app.Response, error) {
	cctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cctx = servicetoken.WithAudience(cctx, e.svc.Name) // the service credential is made for this service
	var body io.Reader
	if c.Body != nil {
		body = bytes.NewReader(c.Body)
	}
	req, err := http.NewRequestWithContext(cctx, e.method, e.svc.BaseURL+c.Path, body)
	if err != nil {
		return nil, fmt.Errorf("build request to %s: %w", e.svc.Name, err)
	}
	req.Header = header(c)

	start := time.Now()
	resp, err := e.client.http.Do(req)
	if err == nil {
		defer resp.Body.Close()
		var b []byte
		b, err = io.ReadAll(io.LimitReader(resp.Body, int64(e.maxResponse)+1))
		if err == nil && len(b) > e.maxResponse {
			err = fmt.Errorf("response larger than %d bytes", e.maxResponse)
		}
		if err == nil && resp.StatusCode >= 400 && !isProblem(resp.Header) {
			// Every service answers errors as problem+json; anything else came from below the service
			// (a proxy, or net/http refusing a malformed request) and is no answer to relay.
			err = fmt.Errorf("answered %d with Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if err == nil {
			e.status(resp.StatusCode).Observe(time.Since(start).Seconds())
			return &app.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	o := &e.unavail
	if errors.Is(cctx.Err(), context.DeadlineExceeded) {
		o = &e.timeout
	}
	o.duration.Observe(time.Since(start).Seconds())
	o.errors.Inc()
	return nil, fmt.Errorf("%w: %s %s %s: %w", o.sentinel, e.svc.Name, e.method, c.Path, err)
}

// header is the header of a call: only what the services need, and the client id the gateway
// authenticated, never one the client sent; a command's (a call with a key) says what its body is and
// carries its key.
func header(c app.Call) http.Header {
	h := make(http.Header, 5)
	h[headerAccept] = []string{"application/json"}
	h[headerRequestID] = []string{c.RequestID}
	if c.Operator != "" {
		h[headerOperatorID] = []string{c.Operator}
	} else {
		h[headerClientID] = []string{c.Client}
	}
	if c.Key != "" {
		h[headerContentType] = []string{"application/json"}
		h[headerIdempotencyKey] = []string{c.Key}
	}
	if c.ContentType != "" {
		h[headerContentType] = []string{c.ContentType}
	}
	return h
}

// Header names in canonical form, so setting them skips canonicalising them on every call.
var (
	headerAccept         = textproto.CanonicalMIMEHeaderKey("Accept")
	headerContentType    = textproto.CanonicalMIMEHeaderKey("Content-Type")
	headerRequestID      = textproto.CanonicalMIMEHeaderKey(observability.HeaderRequestID)
	headerClientID       = textproto.CanonicalMIMEHeaderKey(contract.HeaderClientID)
	headerIdempotencyKey = textproto.CanonicalMIMEHeaderKey(contract.HeaderIdempotencyKey)
	headerOperatorID     = textproto.CanonicalMIMEHeaderKey(servicetoken.HeaderOperatorID)
)

// status is the duration observer of answers with status code, resolved on its first use.
func (e *Endpoint) status(code int) prometheus.Observer {
	if code < 0 || code >= len(e.byStatus) {
		return e.client.duration.WithLabelValues(e.svc.Name, e.label, strconv.Itoa(code))
	}
	if o := e.byStatus[code].Load(); o != nil {
		return o.Observer
	}
	o := &observer{e.client.duration.WithLabelValues(e.svc.Name, e.label, strconv.Itoa(code))}
	e.byStatus[code].Store(o)
	return o.Observer
}

func isProblem(h http.Header) bool {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return mt == "application/problem+json"
}
