package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"testing"

	"upi/command-service/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/problem"
	"upi/shared/platform/eventstore"
)

// FuzzInternalRoutes sends arbitrary requests to every route of the command service, the workflow's step
// API included, through the real router on a real database: never a 5xx or a panic, every refusal a
// problem+json with its status and a code, and nothing invalid in the log (every new event decodes, and
// the streams it lands on still fold with the service's own aggregates).
//
//	go test ./internal/httpapi -run '^$' -fuzz FuzzInternalRoutes -fuzztime 3m
func FuzzInternalRoutes(f *testing.F) {
	e := newEnv(f)
	e.openAccount("psp-a", "alice@okbank")
	e.openAccount("psp-b", "bob@okbank")
	e.deposit("psp-a", "alice@okbank", 100_000, "fund-alice")
	pay := e.pay("psp-a", "alice@okbank", "bob@okbank", 700, "seed-pay").PaymentID
	steps := func(body string) string { return `{"steps":[` + body + `]}` }

	seeds := []struct {
		route                  uint8
		client, key, param, ct string
		body                   string
	}{
		{0, "psp-a", "k1", "", "application/json", `{"vpa":"carol@okbank","holder_name":"Carol"}`},
		{0, "psp-a", "k2", "", "application/json", `{"vpa":"m@okbank","holder_name":"Shop","type":"ENTITY","mcc":"5411"}`},
		{1, "psp-a", "k3", "alice@okbank", "application/json", `{"amount_paise":5000,"reference":"r"}`},
		{1, "psp-b", "k4", "alice@okbank", "application/json", `{"amount_paise":9223372036854775807,"reference":"r"}`},
		{2, "psp-a", "k5", "", "application/json", `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":300}`},
		{2, "psp-a", "k6", "", "application/json", `{"payer_vpa":"alice@okbank","payee_vpa":"alice@okbank","amount_paise":1}`},
		{3, "event-consumers", "", "", "application/json", steps(`{"payment_id":"` + pay + `","step":"debit","account":"alice@okbank"}`)},
		{3, "event-consumers", "", "", "application/json", steps(`{"payment_id":"` + pay + `","step":"credit"},{"payment_id":"` + pay + `","step":"complete"}`)},
		{3, "event-consumers", "", "", "application/json", steps(`{"payment_id":"` + pay + `","step":"reverse","code":"PAYEE_UNAVAILABLE"}`)},
		{3, "event-consumers", "", "", "application/json", steps(`{"payment_id":"` + pay + `","step":"fail","code":"X","reason":"r"}`)},
		{3, "event-consumers", "", "", "application/json", steps(`{"payment_id":"` + pay + `","step":"credit","account":"alice@okbank"}`)},
		{3, "event-consumers", "", "", "application/json", steps(`{"payment_id":"00000000-0000-0000-0000-000000000000","step":"reject-debit","code":"C"}`)},
		{3, "", "", "", "", `{"steps":null}`},
		{3, "event-consumers", "", "", "application/json", `{"steps":[{"payment_id":"` + pay + `","step":"debit"}],"x":1}`},
		{1, "psp-a", "k7", "..%2f", "application/json; charset=utf-8", "\xff"},
	}
	for _, s := range seeds {
		f.Add(s.route, s.client, s.key, s.param, s.ct, []byte(s.body))
	}
	handler := e.srv.Config.Handler
	ctx := context.Background()
	var seen eventstore.Position // the log read so far; the fuzz function runs sequentially per process
	f.Fuzz(func(t *testing.T, route uint8, client, key, param, ct string, body []byte) {
		path := ""
		switch route % 5 {
		case 0:
			path = app.PathAccounts
		case 1:
			path = app.PathAccounts + "/" + param + "/deposits"
		case 2:
			path = app.PathPayments
		case 3:
			path = contract.PathSteps
		case 4:
			path = app.PathAccounts + "/" + param + "/withdrawals"
		}
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.URL.Path, r.URL.RawPath = path, ""
		if client != "" {
			r.Header[contract.HeaderClientID] = []string{client}
		}
		if key != "" {
			r.Header[contract.HeaderIdempotencyKey] = []string{key}
		}
		if ct != "" {
			r.Header["Content-Type"] = []string{ct}
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)

		if w.Code >= 500 {
			t.Fatalf("POST %s %q (client %q key %q): %d %s", path, body, client, key, w.Code, w.Body)
		}
		if w.Code >= 400 {
			if mt, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type")); mt != problem.ContentType {
				t.Fatalf("POST %s: %d with Content-Type %q", path, w.Code, w.Header().Get("Content-Type"))
			}
			var p problem.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Code == "" || p.Status != w.Code {
				t.Fatalf("POST %s: bad problem %d %s", path, w.Code, w.Body)
			}
		}

		// Nothing invalid in the log: every new event decodes, and each stream it touched still folds.
		evs, err := e.store.ReadLog(ctx, seen, 1000)
		if err != nil {
			t.Fatal(err)
		}
		streams := map[string]string{}
		for _, ev := range evs {
			seen = ev.Position
			if _, err := events.Decode(ev.Type, ev.Payload); err != nil {
				t.Fatalf("event %s %s in the log does not decode: %v", ev.Type, ev.Payload, err)
			}
			streams[ev.AggregateID] = ev.AggregateType
		}
		for id, typ := range streams {
			switch typ {
			case "account":
				_, _, err = eventstore.LoadState(ctx, e.store, app.AccountAggregate(), id)
			case "payment":
				_, _, err = eventstore.LoadState(ctx, e.store, app.PaymentAggregate(), id)
			case "settlement":
				_, _, err = eventstore.LoadState(ctx, e.store, app.SettlementAggregate(), id)
			default:
				t.Fatalf("stream %s of unknown type %q", id, typ)
			}
			if err != nil {
				t.Fatalf("stream %s (%s) no longer folds after POST %s %q: %v", id, typ, path, body, err)
			}
		}
	})
}
