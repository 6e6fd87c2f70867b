package observability

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestRedactRemovesVPAsAndRRNs(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/accounts/alice.k@okbank/transactions":     "/v1/accounts/[vpa]/transactions",
		"payer bob@okbank: account not found":          "payer [vpa]: account not found",
		"rrn=612345678901&limit=5":                     "rrn=[rrn]&limit=5",
		"payment 5b0c1f0e-2f7d-4a8e-9d0a-6e1f3c7b2a41": "payment 5b0c1f0e-2f7d-4a8e-9d0a-6e1f3c7b2a41",
		"12345 and 1234567890123":                      "12345 and 1234567890123",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	SetPersonalData(true)
	defer SetPersonalData(false)
	if got := Redact("bob@okbank"); got != "bob@okbank" {
		t.Errorf("with LOG_PERSONAL_DATA, Redact = %q", got)
	}
}

func TestLogsCarryNoVPA(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: redactAttr}))
	log.Error("debit of carol@okbank refused", "vpa", "carol@okbank", "err", errors.New("payer carol@okbank: closed"),
		"rrn", "612345678901")
	if out := buf.String(); strings.Contains(out, "carol") || strings.Contains(out, "612345678901") {
		t.Errorf("log line carries personal data: %s", out)
	}
}

func TestSpanURLsCarryNoVPA(t *testing.T) {
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(redactingExporter{mem}))
	_, span := tp.Tracer("t").Start(context.Background(), "GET",
		trace.WithAttributes(attribute.String("url.path", "/v1/accounts/dave@okbank")))
	// A client span's URL is set after its start.
	span.SetAttributes(attribute.String("url.full", "http://query:8082/v1/vpas/dave@okbank?rrn=612345678901"),
		attribute.String("http.route", "/v1/vpas/{vpa}"))
	span.End()
	got := mem.GetSpans()
	if len(got) != 1 {
		t.Fatalf("%d spans exported", len(got))
	}
	for _, kv := range got[0].Attributes {
		if v := kv.Value.Emit(); strings.Contains(v, "dave") || strings.Contains(v, "612345678901") {
			t.Errorf("span attribute %s = %s", kv.Key, v)
		}
	}
	if len(got[0].Attributes) != 3 {
		t.Errorf("attributes %v, want the three, redacted", got[0].Attributes)
	}
}
