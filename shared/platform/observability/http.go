package observability

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"upi/shared/contract/problem"
)

// HeaderRequestID carries the request id between clients and services.
const HeaderRequestID = "X-Request-ID"

// sane reports whether a client's request id may be reused: 1 to 128 characters of A-Z a-z 0-9 . _ : -.
func sane(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == ':' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

// Registry returns a Prometheus registry with the Go and process collectors.
func Registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Check is one dependency that /readyz pings.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
	// Optional checks are reported ("unavailable") but do not make the service unready: a dependency only
	// one part of the service needs, which waits for it on its own (the event feed's broker).
	Optional bool
}

// RouterConfig is what NewRouter needs.
type RouterConfig struct {
	Log      *slog.Logger
	Registry *prometheus.Registry
	Checks   []Check
}

// NewRouter returns a chi router with the middleware every service runs (request id, panic recovery,
// access log, HTTP metrics), problem+json 404/405, and /healthz, /readyz and /metrics.
func NewRouter(cfg RouterConfig) chi.Router {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total", Help: "HTTP requests served, by route, method and status.",
	}, []string{"route", "method", "status"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "HTTP request duration, by route and method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "method"})
	cfg.Registry.MustRegister(requests, duration)

	r := chi.NewRouter()
	if Tracing() {
		// The server span is outermost, so that every line logged below it carries its ids. A client's
		// traceparent is its parent (the gateway accepts one; the other services get the gateway's).
		r.Use(otelhttp.NewMiddleware("http.server", otelhttp.WithPropagators(propagator),
			otelhttp.WithFilter(func(r *http.Request) bool { return !unwatched(r.URL.Path) }),
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method })))
	}
	r.Use(requestID, recoverer(cfg.Log), instrument(cfg.Log, requests, duration))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeNotFound, "no such route"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.New(http.StatusMethodNotAllowed, problem.CodeMethodNotAllowed,
			r.Method+" is not allowed on this route"))
	})
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	r.Get("/readyz", ready(cfg.Log, cfg.Checks))
	r.Handle("/metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	return r
}

func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if !sane(id) {
			id = uuid.NewString()
			r.Header.Set(HeaderRequestID, id)
		}
		w.Header().Set(HeaderRequestID, id)
		if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
			span.SetAttributes(attribute.String("request.id", id))
		}
		next.ServeHTTP(w, r.WithContext(WithRequestID(r.Context(), id)))
	})
}

func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.ErrorContext(r.Context(), "panic serving request", "panic", v, "stack", string(debug.Stack()))
					problem.Write(w, problem.New(http.StatusInternalServerError, problem.CodeInternal, "internal error"))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

func instrument(log *slog.Logger, requests *prometheus.CounterVec, duration *prometheus.HistogramVec) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			elapsed := time.Since(start)
			requests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
			duration.WithLabelValues(route, r.Method).Observe(elapsed.Seconds())
			if unwatched(route) {
				return
			}
			if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
				// The route is known only once chi has matched it: it names the span, as the semantic
				// conventions ask ("POST /v1/payments"), never the raw path with its ids.
				span.SetName(r.Method + " " + route)
				span.SetAttributes(attribute.String("http.route", route))
			}
			level := slog.LevelInfo
			if status >= 500 && status != http.StatusServiceUnavailable {
				// A 503 is the service saying "later" (overloaded, or a dependency down), with Retry-After:
				// counted in the metrics, and logged once by whatever decided it, not as an error per
				// request, which under an overload would cost more than shedding it.
				level = slog.LevelError
			}
			log.Log(r.Context(), level, "request", "method", r.Method, "route", route, "status", status,
				"duration_ms", float64(elapsed.Microseconds())/1000, "bytes", ww.BytesWritten())
		})
	}
}

// unwatched reports whether path is a probe or scrape route, which is neither logged nor traced.
func unwatched(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/metrics"
}

func ready(log *slog.Logger, checks []Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		body := struct {
			Status string            `json:"status"`
			Checks map[string]string `json:"checks"`
		}{Status: "ready", Checks: make(map[string]string, len(checks))}
		for _, c := range checks {
			if err := c.Ping(ctx); err != nil {
				if !c.Optional {
					body.Status = "unavailable"
				}
				body.Checks[c.Name] = "unavailable"
				log.WarnContext(ctx, "readiness check failed", "dependency", c.Name, "optional", c.Optional, "err", err)
				continue
			}
			body.Checks[c.Name] = "ok"
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if body.Status != "ready" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	}
}

// HTTPCheck pings a downstream service's /healthz (not its /readyz, so that readiness checks do not
// cascade through every service's dependencies).
func HTTPCheck(name, baseURL string, client *http.Client) Check {
	return Check{Name: name, Ping: func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return &statusError{resp.StatusCode}
		}
		return nil
	}}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "status " + strconv.Itoa(e.code) }
