package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"upi/shared/contract/events"
	"upi/shared/contract/problem"
)

// overloadRun is the system offered three times what it accepts at saturation (BenchmarkPayments
// overload-3x). It first measures saturation: 16 clients paying back to back for PAYBENCH_CALIBRATE_SECONDS
// (default 5), accepted/s = S. Then, once that work has drained, payments arrive at 3·S a second, each on
// its own connection whatever happened to the ones before (an open loop: users do not slow down because
// the system does), for the load time. One arrival in four is impatient and hangs up after 100 ms (an
// abandoned request); the others wait up to 10 s. What it checks and reports:
//
//   - every answer is 202, or 503 OVERLOADED problem+json with Retry-After (shed), or no answer from an
//     impatient client (abandoned); anything else fails the benchmark;
//   - admitted-p50-ms, admitted-p99-ms: how long the 202s took (bounded: the overload is shed, not queued);
//     shed-p99-ms: how fast a shed request hears so;
//   - after the drain, the bank invariant: every payment in the log (the admitted ones, and those abandoned
//     requests that did run) completed exactly once, with one debit and one credit; the sum of all
//     balances in the accounts projection is what it was before the load; no balance is negative. An
//     abandoned request moved money whole or not at all.
func (s *paymentStack) overloadRun(b *testing.B, load time.Duration, vpas []string) {
	ctx := context.Background()
	calibrate := time.Duration(envInt("PAYBENCH_CALIBRATE_SECONDS", 5)) * time.Second
	var cal loadResult
	start, end := clients(16, calibrate, func() {
		p, err := s.pay(randomPair(vpas))
		if err != nil {
			cal.fail(err)
			return
		}
		cal.ok(p.PaymentID, 0)
	})
	if cal.failures > 0 {
		b.Fatalf("calibration: %d requests not accepted; the first: %v", cal.failures, cal.first)
	}
	saturation := float64(len(cal.ids)) / end.Sub(start).Seconds()
	s.drain(ctx, b, len(cal.ids))
	before := s.totalBalance(ctx, b)

	rate := 3 * saturation
	b.Logf("saturation %.0f accepted/s (16 clients, %v); offering %.0f/s for %v", saturation, calibrate, rate, load)
	cpu0 := s.sampleCPU(ctx, b)
	b.ResetTimer()
	var mu sync.Mutex
	var admitted, shed []time.Duration
	abandoned, offered := 0, 0
	var wrong []string // the first few
	wrongs := 0
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, MaxConnsPerHost: 0}}
	defer hc.CloseIdleConnections()
	client := &bankClient{base: s.client.base, key: s.client.key, http: hc}
	loadStart := time.Now()
	for next := loadStart; time.Since(loadStart) < load; next = next.Add(interval) {
		time.Sleep(time.Until(next))
		offered++
		impatient := offered%4 == 0
		wg.Go(func() {
			payer, payee := randomPair(vpas)
			patience := 10 * time.Second
			if impatient {
				patience = 100 * time.Millisecond
			}
			cctx, cancel := context.WithTimeout(ctx, patience)
			defer cancel()
			t0 := time.Now()
			st, body, h := client.do(cctx, http.MethodPost, "/v1/payments", uuid.NewString(),
				map[string]any{"payer_vpa": payer, "payee_vpa": payee, "amount_paise": payPaise, "note": "overload"})
			took := time.Since(t0)
			var p problem.Problem
			_ = json.Unmarshal(body, &p)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case st == http.StatusAccepted:
				admitted = append(admitted, took)
			case st == http.StatusServiceUnavailable && p.Code == problem.CodeOverloaded && h.Get("Retry-After") != "" &&
				h.Get("Content-Type") == problem.ContentType:
				shed = append(shed, took)
			case st == 0 && impatient && cctx.Err() != nil:
				abandoned++
			default:
				wrongs++
				if len(wrong) < 5 {
					wrong = append(wrong, fmt.Sprintf("%d %s (after %v, impatient %v)", st, body, took, impatient))
				}
			}
		})
	}
	wg.Wait()
	window := time.Since(loadStart)
	if len(wrong) > 0 {
		b.Fatalf("%d answers are neither 202, nor 503 OVERLOADED with Retry-After, nor an abandoned request; the first: %v",
			wrongs, wrong)
	}

	// Every payment that got into the log ends; the consumers catch up.
	var initiated int
	if err := s.pool.QueryRow(ctx, `select count(*) from events where event_type = $1`, events.PaymentInitiated).
		Scan(&initiated); err != nil {
		b.Fatal(err)
	}
	s.drain(ctx, b, initiated)
	cpu1 := s.sampleCPU(ctx, b)
	b.StopTimer()
	s.checkBankInvariant(ctx, b, before, initiated)
	ran := initiated - len(cal.ids) - len(admitted)
	b.Logf("offered %d in %.1f s: %d admitted, %d shed (503 OVERLOADED), %d abandoned by their clients (%d of which ran, whole)",
		offered, window.Seconds(), len(admitted), len(shed), abandoned, ran)
	if ran < 0 || ran > abandoned {
		b.Fatalf("%d payments in the log beyond the admitted ones, with %d requests abandoned", ran, abandoned)
	}
	pct := func(d []time.Duration, q float64) float64 {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return float64(d[min(len(d)-1, int(q*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(saturation, "saturation-accepted/s")
	b.ReportMetric(float64(offered)/window.Seconds(), "offered/s")
	b.ReportMetric(float64(len(admitted))/window.Seconds(), "admitted/s")
	b.ReportMetric(float64(len(shed))/window.Seconds(), "shed/s")
	b.ReportMetric(pct(admitted, 0.50), "admitted-p50-ms")
	b.ReportMetric(pct(admitted, 0.99), "admitted-p99-ms")
	b.ReportMetric(pct(shed, 0.99), "shed-p99-ms")
	b.ReportMetric(float64(abandoned), "abandoned")
	reportCPU(b, cpu0, cpu1, len(admitted)+ran)
	b.ReportMetric(0, "ns/op")
}

// totalBalance is the sum of every balance in the accounts projection.
func (s *paymentStack) totalBalance(ctx context.Context, b *testing.B) int64 {
	b.Helper()
	var sum int64
	if err := s.pool.QueryRow(ctx, `select coalesce(sum(balance_paise), 0)::bigint from accounts`).Scan(&sum); err != nil {
		b.Fatal(err)
	}
	return sum
}

// checkBankInvariant holds the log and the read model to the bank's rules after an overload: every
// payment initiated ended COMPLETED, once, with exactly one debit and one credit of its own; no payment
// failed (every account has plenty); the accounts' total is what it was before the load, and no balance is
// negative.
func (s *paymentStack) checkBankInvariant(ctx context.Context, b *testing.B, before int64, initiated int) {
	b.Helper()
	var completed, failed, debits, credits, payments int
	if err := s.pool.QueryRow(ctx, `
		select count(*) filter (where event_type = $1), count(*) filter (where event_type = $2),
		       count(*) filter (where event_type = $3), count(*) filter (where event_type = $4),
		       count(distinct payload->>'payment_id') filter (where event_type in ($3, $4))
		from events`, events.PaymentCompleted, events.PaymentFailed, events.AccountDebited, events.AccountCredited).
		Scan(&completed, &failed, &debits, &credits, &payments); err != nil {
		b.Fatal(err)
	}
	if completed != initiated || failed != 0 || debits != initiated || credits != initiated || payments != initiated {
		b.Fatalf("%d payments initiated: %d completed, %d failed, %d debits, %d credits over %d payments",
			initiated, completed, failed, debits, credits, payments)
	}
	var negative int
	if err := s.pool.QueryRow(ctx, `select count(*) from accounts where balance_paise < 0 and vpa like '%@bench'`).
		Scan(&negative); err != nil {
		b.Fatal(err)
	}
	if after := s.totalBalance(ctx, b); after != before || negative != 0 {
		b.Fatalf("the accounts held %d in all before the load and %d after; %d balances negative", before, after, negative)
	}
}
