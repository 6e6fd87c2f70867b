// Package webhookhttp sends webhook deliveries over HTTP (webhooks.Transport), safe to point at the
// internet: https only unless development mode allows http, no private, loopback, link-local or otherwise
// special target unless WEBHOOK_ALLOW_PRIVATE says so (checked on every connection, after DNS, so a name
// that resolves elsewhere later cannot get in), no redirects, no proxy, a timeout on every attempt and a
// bounded read of the answer.
package webhookhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"upi/event-consumers/internal/app/webhooks"
)

// Config are the transport's settings.
type Config struct {
	Timeout      time.Duration // one attempt, connection included (WEBHOOK_TIMEOUT)
	AllowHTTP    bool          // http:// targets too (development mode)
	AllowPrivate bool          // private, loopback and link-local targets too (WEBHOOK_ALLOW_PRIVATE)
	UserAgent    string
}

// maxRead bounds how much of an answer is read (the rest is dropped with the connection).
const maxRead = 64 << 10

// excerptLen is how much of an answer is kept with the attempt.
const excerptLen = 512

// ErrForbiddenTarget: the target's address is one the settings do not allow.
var ErrForbiddenTarget = errors.New("webhook target address not allowed")

// Client is the transport.
type Client struct {
	cfg  Config
	http *http.Client
}

// New returns the transport.
func New(cfg Config) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "upi-webhooks/1"
	}
	dialer := &net.Dialer{Timeout: min(cfg.Timeout, 5*time.Second), KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivate {
		dialer.Control = guard
	}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would connect for us, past the guard
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: cfg.Timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &Client{cfg: cfg, http: &http.Client{Transport: transport, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// guard refuses a connection to an address that is not a public unicast one. It runs on the address
// actually dialled, after resolution, for every connection.
func guard(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrForbiddenTarget, host)
	}
	if !Public(ip) {
		return fmt.Errorf("%w: %s is not a public address", ErrForbiddenTarget, ip)
	}
	return nil
}

// special are ranges that are neither private nor loopback by the standard library's tests, but no public
// receiver lives in: shared address space (carrier-grade NAT), benchmarking, documentation, IETF protocol
// assignments, 6to4 relays, and the reserved 240/4.
var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.88.99.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// Public reports whether ip is a public unicast address a webhook may be sent to.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || !ip.IsGlobalUnicast() {
		return false
	}
	for _, p := range special {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// Send implements webhooks.Transport.
func (c *Client) Send(ctx context.Context, r webhooks.Request) webhooks.Response {
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && c.cfg.AllowHTTP)) {
		return webhooks.Response{Err: errors.New("the endpoint's URL is not https")}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, strings.NewReader(string(r.Body)))
	if err != nil {
		return webhooks.Response{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return webhooks.Response{Err: simplify(err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxRead))
	if len(body) > excerptLen {
		body = body[:excerptLen]
	}
	return webhooks.Response{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After")), Excerpt: string(body)}
}

// simplify keeps what an endpoint's owner can act on from a transport error.
func simplify(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var dns *net.DNSError
	switch {
	case errors.Is(err, ErrForbiddenTarget):
		return err
	case errors.As(err, &dns):
		// Not the resolver's address: that is this installation's, not the endpoint owner's business.
		return fmt.Errorf("cannot resolve %s: %s", dns.Name, dns.Err)
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout"):
		return errors.New("timed out")
	}
	return err
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date (0 when absent or unreadable).
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
