package observability

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
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
	// An unsampled span passes its decision on.
	const unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	if got := TraceParent(RemoteParent(context.Background(), unsampled)); got != unsampled {
		t.Fatalf("TraceParent of an unsampled span = %q, want %q", got, unsampled)
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

func TestTraceParentOf(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct{ meta, want string }{
		{`{"traceparent":"` + tp + `"}`, tp},
		{`{"request_id": "r1", "traceparent": "` + tp + `", "client_id": "c"}`, tp}, // as jsonb prints it
		{`{"request_id": "r1"}`, ""},
		// A value that is the word itself (a client's X-Request-ID passes sane()): jsonb sorts request_id
		// before traceparent, so the value is met first and must not hide the key.
		{`{"client_id": "c", "request_id": "traceparent", "traceparent": "` + tp + `"}`, tp},
		{`{"request_id": "traceparent"}`, ""},
		{`{"traceparent": 7}`, ""},
		{`{"traceparent"`, ""},
		{`{"traceparent": "unterminated`, ""},
		{``, ""},
	} {
		if got := TraceParentOf([]byte(tc.meta)); got != tc.want {
			t.Errorf("TraceParentOf(%s) = %q, want %q", tc.meta, got, tc.want)
		}
	}
}

// A batch whose events come from one trace joins it; a batch from several starts a trace of its own,
// linked to each.
func TestStartBatch(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	const (
		a1 = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		a2 = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"
		b1 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	)
	for _, tc := range []struct {
		name      string
		parents   []string
		wantTrace string // "" for a new trace
		wantLinks int
	}{
		{"one event", []string{a1}, "4bf92f3577b34da6a3ce929d0e0e4736", 0},
		{"one trace", []string{a1, "", a2}, "4bf92f3577b34da6a3ce929d0e0e4736", 1},
		{"two traces", []string{a1, b1, a2}, "", 3},
		{"none", []string{"", "garbage"}, "", 0},
	} {
		_, span := StartBatch(context.Background(), tracer, tc.name, tc.parents)
		span.End()
		if !span.SpanContext().IsSampled() {
			t.Fatalf("%s: not sampled", tc.name)
		}
		got := rec.Ended()[len(rec.Ended())-1]
		if tc.wantTrace != "" {
			if got.SpanContext().TraceID().String() != tc.wantTrace || got.Parent().SpanID().String() != tc.parents[0][36:52] {
				t.Errorf("%s: trace %s parent %s, want a child of %s", tc.name, got.SpanContext().TraceID(), got.Parent().SpanID(), tc.parents[0])
			}
		} else if got.Parent().IsValid() {
			t.Errorf("%s: parent %s, want a root span", tc.name, got.Parent().SpanID())
		}
		if len(got.Links()) != tc.wantLinks {
			t.Errorf("%s: %d links, want %d", tc.name, len(got.Links()), tc.wantLinks)
		}
	}
}

// A batch whose events come from several traces none of which was sampled is not sampled either (with
// parent-based sampling), rather than a new sampled root.
func TestStartBatchFollowsUnsampledParents(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	_, span := StartBatch(context.Background(), tracer, "unsampled", []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"})
	span.End()
	if span.SpanContext().IsSampled() || len(rec.Ended()) != 0 {
		t.Fatalf("a batch of unsampled traces was sampled: %v", span.SpanContext())
	}
}
