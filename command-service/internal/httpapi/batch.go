package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
	"upi/shared/platform/observability"
	"upi/shared/platform/servicetoken"
)

// registerBatch mounts POST /internal/commands, the gateway's batches of client commands: each item runs
// through the same router, middleware and handler as the request it stands for would have, concurrently
// with the others, and is answered on its own (docs/internal-api.md). The batch's token authenticated the
// gateway and bound the whole body, so each item passes the token check as the gateway's call for the
// item's own client or operator (servicetoken.Vouch).
func registerBatch(r chi.Router, log *slog.Logger, reg prometheus.Registerer) {
	size := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "command_batch_items",
		Help:    "Client commands per batch from the gateway (POST " + contract.PathCommandBatch + ").",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	reg.MustRegister(size)
	r.Post(contract.PathCommandBatch, batch(r, log, size))
}

func batch(router http.Handler, log *slog.Logger, size prometheus.Observer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		caller, ok := servicetoken.CallerOf(r.Context())
		if !ok {
			problem.Write(w, problem.New(http.StatusForbidden, problem.CodeForbidden, "a batch needs the gateway's token"))
			return
		}
		var req contract.BatchRequest
		if p := httpjson.DecodeLimited(w, r, &req, contract.MaxBatchBytes); p != nil {
			problem.Write(w, p)
			return
		}
		if len(req.Items) == 0 || len(req.Items) > contract.MaxBatchItems {
			problem.Write(w, problem.New(http.StatusBadRequest, problem.CodeValidation,
				fmt.Sprintf("a batch holds 1 to %d items", contract.MaxBatchItems)))
			return
		}
		size.Observe(float64(len(req.Items)))
		// The items' own requests start afresh in the router: no route of the batch's, and the gateway's
		// call for the item's client or operator, not for the batch (which names none).
		base := context.WithValue(r.Context(), chi.RouteCtxKey, (*chi.Context)(nil))
		results := make([]contract.BatchResult, len(req.Items))
		var wg sync.WaitGroup
		for i := range req.Items {
			wg.Go(func() {
				results[i] = runItem(base, router, log, caller.Service, &req.Items[i])
			})
		}
		wg.Wait()
		httpjson.Write(w, http.StatusOK, contract.BatchResponse{Results: results})
	}
}

// runItem serves one item through router and returns its answer.
func runItem(base context.Context, router http.Handler, log *slog.Logger, service string, it *contract.BatchItem) (res contract.BatchResult) {
	// Only client commands travel in a batch: a POST under /v1/ (never another batch, nor a workflow route).
	if it.Method != http.MethodPost || !strings.HasPrefix(it.Path, "/v1/") {
		return problemResult(problem.New(http.StatusBadRequest, problem.CodeValidation, "a batch item is a POST under /v1/"))
	}
	ctx := servicetoken.Vouch(base, servicetoken.Caller{Service: service, Client: it.Client, Operator: it.Operator})
	req, err := http.NewRequestWithContext(ctx, it.Method, it.Path, bytes.NewReader(it.Body))
	if err != nil {
		return problemResult(problem.New(http.StatusBadRequest, problem.CodeValidation, "a batch item's path is not a valid path"))
	}
	h := make(http.Header, 6)
	h.Set("Accept", "application/json")
	if it.ContentType != "" {
		h.Set("Content-Type", it.ContentType)
	} else if len(it.Body) > 0 {
		h.Set("Content-Type", "application/json")
	}
	if it.RequestID != "" {
		h.Set(observability.HeaderRequestID, it.RequestID)
	}
	if it.IdempotencyKey != "" {
		h.Set(contract.HeaderIdempotencyKey, it.IdempotencyKey)
	}
	if it.TraceParent != "" {
		h.Set("Traceparent", it.TraceParent)
	}
	req.Header = h
	rec := &itemWriter{header: make(http.Header, 6)}
	defer func() {
		// The router recovers a handler's panic itself; this is for anything it re-panics.
		if v := recover(); v != nil {
			log.ErrorContext(ctx, "panic serving a batch item", "panic", v)
			res = problemResult(problem.New(http.StatusInternalServerError, problem.CodeInternal, "internal error"))
		}
	}()
	router.ServeHTTP(rec, req)
	return rec.result()
}

func problemResult(p *problem.Problem) contract.BatchResult {
	rec := &itemWriter{header: make(http.Header, 2)}
	problem.Write(rec, p)
	return rec.result()
}

// itemWriter keeps an item's answer in memory.
type itemWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *itemWriter) Header() http.Header { return w.header }

func (w *itemWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *itemWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

func (w *itemWriter) result() contract.BatchResult {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	res := contract.BatchResult{Status: status, Body: w.body.Bytes()}
	for _, name := range contract.BatchHeaders {
		if v := w.header.Get(name); v != "" {
			if res.Header == nil {
				res.Header = make(map[string]string, 4)
			}
			res.Header[name] = v
		}
	}
	return res
}
