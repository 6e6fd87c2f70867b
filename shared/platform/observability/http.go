package observability

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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
	// Guard, when set, wraps every route but /healthz and /readyz, unmatched ones included (so that an
	// unauthenticated caller learns nothing of which routes exist): the service-to-service
	// authentication of the internal services (servicetoken.Verifier.Middleware).
	Guard func(http.Handler) http.Handler
}

// NewRouter returns a chi router with the middleware every service runs (request id, panic recovery,
// access log, HTTP metrics), problem+json 404/405, /healthz and a /readyz that says only ready or not
// (at most one round of checks a second, whoever asks). Metrics, the detailed readiness, profiles and
// admin routes are on the operations listener (NewOpsRouter), never on this one.
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
	if cfg.Guard != nil {
		r.Use(except(cfg.Guard, "/healthz", "/readyz"))
	}
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
	r.Get("/readyz", (&cachedReadiness{log: cfg.Log, checks: cfg.Checks}).serve)
	return r
}

// except applies mw to every request but those for paths.
func except(mw func(http.Handler) http.Handler, paths ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		guarded := mw(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for _, p := range paths {
				if r.URL.Path == p {
					next.ServeHTTP(w, r)
					return
				}
			}
			guarded.ServeHTTP(w, r)
		})
	}
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

// readiness is the report of one round of checks.
type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

// check pings every dependency, in turn, within 2s in all.
func check(ctx context.Context, log *slog.Logger, checks []Check) readiness {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	body := readiness{Status: "ready", Checks: make(map[string]string, len(checks))}
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
	return body
}

func writeReadiness(w http.ResponseWriter, body readiness) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if body.Status != "ready" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(body)
}

// ready is the detailed readiness of the operations listener: every check, by name, on every call.
func ready(log *slog.Logger, checks []Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { writeReadiness(w, check(r.Context(), log, checks)) }
}

// cachedReadiness is the readiness of a service's own port: ready or not, nothing about which
// dependency, and one round of checks a second at most, so that whoever reaches the port cannot make it
// ping its dependencies at will.
type cachedReadiness struct {
	log    *slog.Logger
	checks []Check
	mu     sync.Mutex
	at     time.Time
	status string
}

func (c *cachedReadiness) serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if time.Since(c.at) >= time.Second {
		// The lock is held through the round: callers meanwhile wait for it rather than start their own.
		c.status, c.at = check(r.Context(), c.log, c.checks).Status, time.Now()
	}
	status := c.status
	c.mu.Unlock()
	writeReadiness(w, readiness{Status: status})
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
