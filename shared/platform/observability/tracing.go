package observability

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
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
	// URLs are redacted on the way out (privacy.go).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(redactingExporter{exp}), sdktrace.WithResource(res))
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

// TraceParent is the W3C traceparent of the span in ctx, or "" when there is none (tracing off). A span
// that was not sampled has one too, flagged so: kept in an event's metadata, it makes the workflow's step
// for that event unsampled as well (parent-based sampling), instead of a trace of its own without the
// request that caused it.
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
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

// traceParentKey is the key of the traceparent in an event's metadata.
var traceParentKey = []byte(`"traceparent"`)

// TraceParentOf is the traceparent kept in an event's metadata (a JSON object), or "". It scans for the
// key rather than decoding the JSON: every consumer asks it of every event of every batch while tracing
// is on. A value that is not a well-formed traceparent is ignored later, by RemoteParent.
func TraceParentOf(metadata []byte) string {
	// The word may first appear as a value (a client's request id can be "traceparent"); in JSON only a
	// key is followed by a colon, so the first occurrence followed by one is the key.
	var rest []byte
	for {
		i := bytes.Index(metadata, traceParentKey)
		if i < 0 {
			return ""
		}
		metadata = metadata[i+len(traceParentKey):]
		rest = bytes.TrimLeft(metadata, " \t\r\n")
		if len(rest) > 0 && rest[0] == ':' {
			break
		}
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) == 0 || rest[0] != '"' {
		return ""
	}
	end := bytes.IndexByte(rest[1:], '"')
	if end < 0 {
		return ""
	}
	return string(rest[1 : 1+end])
}

// StartBatch starts the span of work on a batch of events, given the traceparents their metadata kept
// (empty ones ignored): when they all belong to one trace it is a child of the first event's span and
// joins that trace (a payment's projection or relay span then sits in the payment's trace); when they
// belong to several, it is a root span of its own, linked to each (up to the SDK's link limit), unless
// none of them was sampled: then it is not sampled either.
func StartBatch(ctx context.Context, tracer trace.Tracer, name string, traceparents []string,
	attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	var links []trace.Link
	var parent trace.SpanContext
	oneTrace, sampled := true, false
	for _, tp := range traceparents {
		sc := trace.SpanContextFromContext(RemoteParent(context.Background(), tp))
		if !sc.IsValid() {
			continue
		}
		if !parent.IsValid() {
			parent = sc
		} else {
			oneTrace = oneTrace && sc.TraceID() == parent.TraceID()
		}
		sampled = sampled || sc.IsSampled()
		links = append(links, trace.Link{SpanContext: sc})
	}
	opts := []trace.SpanStartOption{trace.WithAttributes(attrs...)}
	switch {
	// One trace, or several none of which was sampled: the batch follows its (first) parent's decision.
	case parent.IsValid() && (oneTrace || !sampled):
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
		if len(links) > 1 {
			opts = append(opts, trace.WithLinks(links[1:]...))
		}
	default:
		opts = append(opts, trace.WithNewRoot(), trace.WithLinks(links...))
	}
	return tracer.Start(ctx, name, opts...)
}
