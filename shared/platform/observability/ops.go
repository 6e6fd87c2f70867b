package observability

import (
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"upi/shared/contract/problem"
	"upi/shared/platform/keyring"
)

// OpsConfig is what NewOpsRouter needs.
type OpsConfig struct {
	Log      *slog.Logger
	Registry *prometheus.Registry
	Checks   []Check
	// Operators are the keys (OPERATOR_KEYS) that open the admin routes.
	Operators *keyring.Keyring
}

// Ops is a service's operations listener: Router serves /healthz, the detailed /readyz and /metrics to
// anyone who can reach the listener (it is never published: Prometheus and the container's healthcheck
// reach it inside the network), and Admin, a group of Router, serves only an operator's key
// (Authorization: Bearer <OPERATOR_KEYS key>): Go's profiles under /debug/pprof/ and the service's admin
// routes, which it adds to Admin.
type Ops struct {
	Router chi.Router
	Admin  chi.Router
}

// NewOpsRouter returns the operations listener's routes.
func NewOpsRouter(cfg OpsConfig) Ops {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "operator_auth_refused_total",
		Help: "Admin requests on the operations listener refused, by reason (missing, invalid).",
	}, []string{"reason"})
	refused.WithLabelValues("missing")
	refused.WithLabelValues("invalid")
	cfg.Registry.MustRegister(refused)

	r := chi.NewRouter()
	r.Use(requestID, recoverer(cfg.Log), opsLog(cfg.Log))
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

	admin := r.With(requireOperator(cfg.Log, cfg.Operators, refused))
	admin.HandleFunc("/debug/pprof/", pprof.Index)
	admin.HandleFunc("/debug/pprof/*", pprof.Index)
	admin.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	admin.HandleFunc("/debug/pprof/profile", pprof.Profile)
	admin.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	admin.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return Ops{Router: r, Admin: admin}
}

// requireOperator lets through only a request whose bearer key is an operator's, and logs who it was.
func requireOperator(log *slog.Logger, operators *keyring.Keyring, refused *prometheus.CounterVec) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, ok := keyring.Bearer(r.Header.Get("Authorization"))
			if !ok {
				refused.WithLabelValues("missing").Inc()
				problem.Write(w, problem.New(http.StatusUnauthorized, problem.CodeUnauthenticated, "admin routes need an operator key"))
				return
			}
			name, ok := operators.Lookup(key)
			if !ok {
				refused.WithLabelValues("invalid").Inc()
				problem.Write(w, problem.New(http.StatusUnauthorized, problem.CodeUnauthenticated, "admin routes need an operator key"))
				return
			}
			log.InfoContext(r.Context(), "admin request", "operator", name, "method", r.Method, "path", r.URL.Path)
			next.ServeHTTP(w, r)
		})
	}
}

// opsLog logs the operations listener's requests other than probes and scrapes.
func opsLog(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			if !unwatched(r.URL.Path) {
				log.DebugContext(r.Context(), "ops request", "method", r.Method, "path", r.URL.Path)
			}
		})
	}
}
