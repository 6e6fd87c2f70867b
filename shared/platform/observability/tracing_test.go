package observability

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

func TestStartTracingWithoutEndpointInstallsNothing(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	before := otel.GetTracerProvider()
	stop, err := StartTracing(context.Background(), slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if Tracing() {
		t.Fatal("Tracing() is true with no endpoint")
	}
	if otel.GetTracerProvider() != before {
		t.Fatal("a tracer provider was installed with no endpoint")
	}
	if TraceParent(context.Background()) != "" {
		t.Fatal("a traceparent with no span")
	}
}

func TestLogLinesCarryTraceAndSpanIDs(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := RemoteParent(WithRequestID(context.Background(), "req-1"), tp)
	if !trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatal("RemoteParent did not take the traceparent")
	}
	if got := TraceParent(ctx); got != tp {
		t.Fatalf("TraceParent = %q, want %q", got, tp)
	}
	var buf bytes.Buffer
	log := slog.New(contextHandler{slog.NewJSONHandler(&buf, nil)})
	log.InfoContext(ctx, "hello")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || line["span_id"] != "00f067aa0ba902b7" || line["request_id"] != "req-1" {
		t.Fatalf("log line %s lacks the ids", buf.String())
	}
}
