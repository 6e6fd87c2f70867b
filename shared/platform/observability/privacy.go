package observability

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Personal data in logs and spans (docs/architecture.md, "Personal data and erasure"): by default no log
// line and no span carries a VPA or an RRN (holder names and notes never reach a log or a span at all).
// Log attributes and errors are redacted as they are written, and the URLs of HTTP spans (client and
// server: a path names accounts, a query string RRNs) as spans start. LOG_PERSONAL_DATA=true turns the
// redaction off, for debugging.
var personalData atomic.Bool

// SetPersonalData says whether logs and spans may carry personal data (LOG_PERSONAL_DATA).
func SetPersonalData(on bool) { personalData.Store(on) }

// PersonalData reports whether logs and spans may carry personal data.
func PersonalData() bool { return personalData.Load() }

var (
	// vpaPattern is a VPA (name@handle; a handle is letters and digits) as it appears in a path, an error
	// or a message, with what follows its handle: "user@host.domain" or "user@127.0.0.1:5432" (a URL's
	// user and host) is no VPA, and is kept (isVPA).
	vpaPattern = regexp.MustCompile(`[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9]+([.:][A-Za-z0-9])?`)
	// rrnPattern is a 12-digit reference (an RRN) standing alone.
	rrnPattern = regexp.MustCompile(`\b[0-9]{12}\b`)
)

// Redacted is what a redacted VPA or RRN reads as.
const (
	RedactedVPA = "[vpa]"
	RedactedRRN = "[rrn]"
)

// Redact returns s with every VPA and RRN replaced (unless LOG_PERSONAL_DATA is on). A string with no
// '@' and no run of twelve digits, which is almost every one, costs a scan and no allocation.
func Redact(s string) string {
	if personalData.Load() {
		return s
	}
	if strings.IndexByte(s, '@') >= 0 {
		s = vpaPattern.ReplaceAllStringFunc(s, func(m string) string {
			if at := strings.LastIndexAny(m, ".:"); at > strings.IndexByte(m, '@') {
				return m // a host (a database URL's user@host:port, an address user@host.domain), not a VPA
			}
			return RedactedVPA
		})
	}
	if hasDigitRun(s, 12) {
		s = rrnPattern.ReplaceAllLiteralString(s, RedactedRRN)
	}
	return s
}

// hasDigitRun reports whether s has n digits in a row.
func hasDigitRun(s string, n int) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			if run++; run >= n {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// redactAttr is the log handler's ReplaceAttr, which sees every attribute, the message included: string
// values and errors are redacted.
func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); s != "" {
			if r := Redact(s); r != s {
				a.Value = slog.StringValue(r)
			}
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			a.Value = slog.StringValue(Redact(err.Error()))
		}
	}
	return a
}

// urlAttributes are the span attributes that hold a request's URL or a part of it (current and older
// semantic conventions).
var urlAttributes = map[attribute.Key]bool{
	"url.full": true, "url.path": true, "url.query": true, "http.url": true, "http.target": true,
}

// redactingExporter redacts the URL attributes of every span as it is exported: the HTTP instrumentation
// sets them at the start of a server span and after the start of a client span, so the last moment is the
// one place that sees them all. The route template (http.route) and the span names (the method, or method
// and route) name no one.
type redactingExporter struct{ sdktrace.SpanExporter }

func (e redactingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if !personalData.Load() {
		for i, s := range spans {
			if attrs, changed := redactAttributes(s.Attributes()); changed {
				spans[i] = redactedSpan{ReadOnlySpan: s, attrs: attrs}
			}
		}
	}
	return e.SpanExporter.ExportSpans(ctx, spans)
}

// redactAttributes returns attrs with their URL attributes redacted, and whether any changed.
func redactAttributes(attrs []attribute.KeyValue) ([]attribute.KeyValue, bool) {
	var out []attribute.KeyValue
	for i, kv := range attrs {
		if !urlAttributes[kv.Key] || kv.Value.Type() != attribute.STRING {
			continue
		}
		v := kv.Value.AsString()
		r := Redact(v)
		if r == v {
			continue
		}
		if out == nil {
			out = append([]attribute.KeyValue(nil), attrs...)
		}
		out[i] = attribute.String(string(kv.Key), r)
	}
	if out == nil {
		return attrs, false
	}
	return out, true
}

// redactedSpan is a span with its attributes replaced.
type redactedSpan struct {
	sdktrace.ReadOnlySpan
	attrs []attribute.KeyValue
}

func (s redactedSpan) Attributes() []attribute.KeyValue { return s.attrs }
