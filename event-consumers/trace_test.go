package main_test

// One payment, traced: the four real services export their spans over OTLP/HTTP to a receiver in the
// test, and the payment's initiation, its workflow steps (debit, credit, complete) and the reads of it
// must come out as one trace, with every span under its cause.

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"upi/shared/contract"
	"upi/shared/contract/projection"
	"upi/testenv"
)

// span is what the test keeps of a received span.
type span struct {
	service, name, id, parent string
	kind                      tracepb.Span_SpanKind
	attrs                     map[string]string
}

// otlpReceiver accepts OTLP/HTTP protobuf trace exports and keeps their spans by trace id (or, with
// discard, decodes and drops them).
type otlpReceiver struct {
	discard bool
	spans   atomic.Int64 // received, kept or not
	mu      sync.Mutex
	traces  map[string][]span
	named   map[string]int64 // with discard: spans received by "service span-name"
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/traces" {
		http.NotFound(w, r)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	var req collectortrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(raw, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.spans.Add(int64(len(ss.Spans)))
		}
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		if o.discard {
			if o.named == nil {
				o.named = map[string]int64{}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					o.named[service+" "+s.Name]++
				}
			}
			continue
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				attrs := map[string]string{}
				for _, kv := range s.Attributes {
					attrs[kv.Key] = kv.GetValue().GetStringValue()
				}
				tid := hex.EncodeToString(s.TraceId)
				o.traces[tid] = append(o.traces[tid], span{service: service, name: s.Name, id: hex.EncodeToString(s.SpanId),
					parent: hex.EncodeToString(s.ParentSpanId), kind: s.Kind, attrs: attrs})
			}
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// perPayment says, with discard, how many spans of each service and name arrived per payment (over the
// whole run: setup's spans too), most first.
func (o *otlpReceiver) perPayment(payments int64) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	names := slices.SortedFunc(maps.Keys(o.named), func(a, b string) int { return cmp.Compare(o.named[b], o.named[a]) })
	var sb strings.Builder
	sb.WriteString("spans per payment:")
	for _, n := range names {
		fmt.Fprintf(&sb, " %.2f %s;", float64(o.named[n])/float64(payments), n)
	}
	return sb.String()
}

func (o *otlpReceiver) trace(id string) []span {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]span(nil), o.traces[id]...)
}

func TestOnePaymentIsOneTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system")
	}
	recv := &otlpReceiver{traces: map[string][]span{}}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	traced := func(env map[string]string) map[string]string {
		env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.URL
		env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
		env["OTEL_TRACES_SAMPLER"] = "parentbased_always_on"
		env["LOG_LEVEL"] = "warn"
		return env
	}
	dbURL := testenv.Postgres(t)
	redisURL := testenv.Redis(t)
	cmd := testenv.StartService(t, "command-service", traced(map[string]string{"DATABASE_URL": dbURL}))
	qry := testenv.StartService(t, "query-service", traced(map[string]string{"DATABASE_URL": dbURL}))
	testenv.StartService(t, "event-consumers", traced(map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL}))
	gw := testenv.StartService(t, "api-gateway", traced(map[string]string{
		"REDIS_URL": redisURL, "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL, "API_KEYS": "psp=key-p"}))

	// The client's own trace: the gateway takes its traceparent as the parent of everything below.
	traceID := strings.ReplaceAll(uuid.NewString(), "-", "")
	clientSpan := traceID[:16]
	call := func(method, path, idem string, body any, traceparent bool) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, gw.URL+path, rd)
		req.Header.Set("Authorization", "Bearer key-p")
		req.Header.Set("Content-Type", "application/json")
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		if traceparent {
			req.Header.Set("traceparent", "00-"+traceID+"-"+clientSpan+"-01")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	run := uuid.NewString()[:8]
	payer, payee := "payer."+run+"@bank", "payee."+run+"@bank"
	for _, vpa := range []string{payer, payee} {
		if st, b := call(http.MethodPost, "/v1/accounts", "open-"+vpa, map[string]any{"vpa": vpa, "holder_name": "Holder"}, false); st != http.StatusCreated {
			t.Fatalf("open %s: %d %s", vpa, st, b)
		}
	}
	if st, b := call(http.MethodPost, "/v1/accounts/"+payer+"/deposits", "fund", map[string]any{"amount_paise": 10000, "reference": "fund"}, false); st != http.StatusCreated {
		t.Fatalf("deposit: %d %s", st, b)
	}
	st, b := call(http.MethodPost, "/v1/payments", "pay", map[string]any{"payer_vpa": payer, "payee_vpa": payee, "amount_paise": 2500}, true)
	if st != http.StatusAccepted {
		t.Fatalf("pay: %d %s", st, b)
	}
	var p contract.Payment
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for p.Status != "COMPLETED" {
		if time.Now().After(deadline) {
			t.Fatalf("payment %s not completed: %s", p.PaymentID, p.Status)
		}
		if st, b := call(http.MethodGet, "/v1/payments/"+p.PaymentID+"?wait=5s", "", nil, true); st == http.StatusOK {
			_ = json.Unmarshal(b, &p)
		}
	}

	// The spans arrive within the exporters' batch delay.
	services := []string{"api-gateway", "command-service", "query-service", "event-consumers"}
	steps := []string{"workflow debit", "workflow credit", "workflow complete",
		"consume " + projection.Payments, "consume " + projection.Accounts}
	var spans []span
	complete := func() bool {
		spans = recv.trace(traceID)
		seen := map[string]bool{}
		for _, s := range spans {
			seen[s.service], seen[s.name] = true, true
		}
		for _, want := range append(services, steps...) {
			if !seen[want] {
				return false
			}
		}
		return true
	}
	for !complete() {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("trace %s incomplete: %s", traceID, describe(spans))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Other services' spans still in flight may land after complete() saw enough; give them a moment.
	time.Sleep(300 * time.Millisecond)
	spans = recv.trace(traceID)

	byID := map[string]span{}
	for _, s := range spans {
		byID[s.id] = s
	}
	// Every span hangs off another span of the trace, or off the client's.
	for _, s := range spans {
		if _, ok := byID[s.parent]; !ok && s.parent != clientSpan {
			t.Errorf("span %s/%q has a parent %q outside the trace", s.service, s.name, s.parent)
		}
	}
	// under reports whether s descends from a span matching (service, name).
	under := func(s span, service, name string) bool {
		for cur, ok := byID[s.parent]; ok; cur, ok = byID[cur.parent] {
			if cur.service == service && cur.name == name {
				return true
			}
		}
		return false
	}
	// find finds the server and internal spans of service named name.
	find := func(service, name string) []span {
		var out []span
		for _, s := range spans {
			if s.service == service && s.name == name && s.kind != tracepb.Span_SPAN_KIND_CLIENT {
				out = append(out, s)
			}
		}
		return out
	}
	onlySpan := func(service, name string) span {
		t.Helper()
		found := find(service, name)
		if len(found) != 1 {
			t.Fatalf("%d spans %s/%q, want 1: %s", len(found), service, name, describe(spans))
		}
		return found[0]
	}
	gwPay := onlySpan("api-gateway", "POST /v1/payments")
	if gwPay.parent != clientSpan {
		t.Errorf("the gateway's span is not the client's child")
	}
	cmdPay := onlySpan("command-service", "POST /v1/payments")
	if !under(cmdPay, "api-gateway", "POST /v1/payments") {
		t.Errorf("command-service's POST /v1/payments is not under the gateway's")
	}
	// The chain through the log: each step under the request or step that appended its event.
	chain := []struct{ step, service, parent string }{
		{"workflow debit", "command-service", "POST /v1/payments"},
		{"workflow credit", "event-consumers", "workflow debit"},
		{"workflow complete", "event-consumers", "workflow credit"},
	}
	for _, c := range chain {
		s := onlySpan("event-consumers", c.step)
		if !under(s, c.service, c.parent) {
			t.Errorf("%q is not under %s/%q", c.step, c.service, c.parent)
		}
		if s.attrs["upi.payment_id"] != p.PaymentID {
			t.Errorf("%q names payment %q, want %s", c.step, s.attrs["upi.payment_id"], p.PaymentID)
		}
		// The step's call, served by the command service, under the step.
		served := false
		for _, c := range find("command-service", "POST "+contract.PathSteps) {
			served = served || under(c, "event-consumers", s.name)
		}
		if !served {
			t.Errorf("no command-service POST %s under %q", contract.PathSteps, c.step)
		}
	}
	// The instrumented clients: PostgreSQL queries in the command service, Redis in the gateway.
	db := map[string]bool{}
	for _, s := range spans {
		if s.kind == tracepb.Span_SPAN_KIND_CLIENT {
			for k, v := range s.attrs {
				if strings.HasPrefix(k, "db.system") {
					db[s.service+" "+v] = true
				}
			}
		}
	}
	for _, want := range []string{"command-service postgresql", "api-gateway redis"} {
		if !db[want] {
			t.Errorf("no %s span in the trace: %s", want, describe(spans))
		}
	}
	// The projections' batches of the payment's events are in its trace too.
	for _, name := range []string{projection.Payments, projection.Accounts} {
		if len(find("event-consumers", "consume "+name)) == 0 {
			t.Errorf("no span of the %s projection in the trace: %s", name, describe(spans))
		}
	}
	if len(find("query-service", "GET /v1/payments/{id}")) == 0 {
		t.Errorf("no query-service read of the payment in the trace")
	}
	if t.Failed() {
		t.Log(describe(spans))
	}
}

func describe(spans []span) string {
	var sb strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&sb, "\n  %s %s/%q parent %s", s.id, s.service, s.name, s.parent)
	}
	return sb.String()
}
