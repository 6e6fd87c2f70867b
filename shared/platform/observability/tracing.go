package observability

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// tracing is whether StartTracing installed an SDK tracer provider. Like OpenTelemetry's own global
// provider it is process-wide: the router, the HTTP clients, the pool and the workflow ask it once, when
// they are built, and add no instrumentation at all when it is off.
var tracing atomic.Bool

// Tracing reports whether traces are exported (StartTracing found an OTLP endpoint).
func Tracing() bool { return tracing.Load() }

// propagator is W3C tracecontext, in and out of every service and in events' metadata.
var propagator = propagation.TraceContext{}

// StartTracing sets up OpenTelemetry tracing from the standard OTEL_* variables, which the SDK reads
// itself (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and its _ARG, OTEL_BSP_*). Traces go
// over OTLP/HTTP protobuf. With no endpoint set, or OTEL_SDK_DISABLED=true, nothing is installed: the
// global tracer provider stays OpenTelemetry's no-op and Tracing reports false. service names the service
// when OTEL_SERVICE_NAME does not. The function returned flushes the spans still buffered (for up to 5s)
// and stops the exporter; call it on exit.
//
// These variables are read here rather than in each service's config struct because the SDK reads
// them anyway, by the specification's names, and a second copy could only disagree with it.
func StartTracing(ctx context.Context, log *slog.Logger, service string) (stop func(), err error) {
	none := func() {}
	otel.SetTextMapPropagator(propagator)
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") ||
		os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return none, nil
	}
	proto := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		return none, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: only http/protobuf is supported", proto)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return none, fmt.Errorf("otlp trace exporter: %w", err)
	}
	// WithFromEnv comes last, so that OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the default.
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName(service)), resource.WithFromEnv(),
		resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return none, fmt.Errorf("trace resource: %w", err)
	}
	// No WithSampler: the SDK takes OTEL_TRACES_SAMPLER (default parentbased_always_on).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	tracing.Store(true)
	log.Info("tracing: exporting spans over OTLP/HTTP", "service", service)
	return func() {
		// ctx has usually ended by now (the signal that stops the service): the flush gets its own deadline.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("tracing: flush on exit failed", "err", err)
		}
	}, nil
}

// Tracer is the named tracer of a component (the global provider's: a no-op one when tracing is off).
func Tracer(name string) trace.Tracer { return otel.Tracer("upi/" + name) }

// HTTPTransport wraps rt (nil: http.DefaultTransport) with client spans and traceparent injection when
// tracing is on, and returns it unchanged when it is off.
func HTTPTransport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	if !Tracing() {
		return rt
	}
	// Client spans are named by method alone, as the semantic conventions ask: a path holds ids (the full
	// URL is an attribute), and the server span below names the route.
	return otelhttp.NewTransport(rt, otelhttp.WithPropagators(propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }))
}

// TracePool makes the pool trace its queries and batches (as children of the caller's span only, so a
// poll loop with no span makes no traces) when tracing is on. It is a db.Open option.
//
// A batch is one span: its statements travel in one round trip, so a span each would time nothing, and
// at a dozen statements per group commit they were most of a payment's spans and half of what tracing
// cost. A statement that fails is recorded on the batch's span, with its SQL.
func TracePool(cfg *pgxpool.Config) {
	if Tracing() {
		cfg.ConnConfig.Tracer = batchSpan{otelpgx.NewTracer(otelpgx.WithDisableAcquireTracer(), otelpgx.WithTrimSQLInSpanName())}
	}
}

// batchSpan is otelpgx's tracer with one span per batch instead of one more per statement.
type batchSpan struct{ *otelpgx.Tracer }

// TraceBatchQuery records a failed statement on the batch's span; a statement that succeeds adds nothing.
func (b batchSpan) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if data.Err == nil {
		return
	}
	span := trace.SpanFromContext(ctx)
	span.RecordError(data.Err, trace.WithAttributes(semconv.DBQueryText(data.SQL)))
}

// TraceRedis makes rdb trace its commands when tracing is on. A command's span names the command but does
// not record it: the gateway's scripts carry response bodies, which have no place in a trace, and the
// instrumentation's default caller lookup (a stack walk per command) cost the gateway a tenth of its CPU.
func TraceRedis(rdb *redis.Client) error {
	if !Tracing() {
		return nil
	}
	if err := redisotel.InstrumentTracing(rdb, redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false)); err != nil {
		return fmt.Errorf("trace redis: %w", err)
	}
	return nil
}

// TraceParent is the W3C traceparent of the span in ctx, or "" when there is none (tracing off, or not
// sampled and so not worth following).
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	return c["traceparent"]
}

// RemoteParent returns ctx with the span context of traceparent as its remote parent (ctx unchanged if
// traceparent is empty or malformed).
func RemoteParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}
