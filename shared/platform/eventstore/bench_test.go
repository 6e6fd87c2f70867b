package eventstore_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"upi/shared/platform/eventstore"
)

const benchAppenders = 16

// BenchmarkAppend measures commands of one event each from 16 concurrent appenders, every command on a
// stream of its own (a payment being initiated), so it compares with the pgbench baseline's single-row
// insert transactions. Both ways a command can append are measured: Append, and Execute, which also looks
// up its dedupe id and loads the stream under the lock.
func BenchmarkAppend(b *testing.B) {
	payload := map[string]any{"payer_vpa": "alice@okbank", "payee_vpa": "bob@okbank", "amount_paise": 12500}
	initiated := func() eventstore.NewEvent {
		return eventstore.NewEvent{ID: uuid.New(), Type: "PaymentInitiated", Data: payload}
	}
	agg := eventstore.Aggregate[int]{Type: "payment", Evolve: func(n int, _ eventstore.Event) (int, error) { return n + 1, nil }}

	b.Run("Append", func(b *testing.B) {
		store := eventstore.New(newPool(b, benchAppenders+2))
		benchAppenders16(b, func(ctx context.Context) error {
			_, err := store.Append(ctx, "payment", "pay-"+uuid.NewString(), eventstore.NoStream, []eventstore.NewEvent{initiated()})
			return err
		})
	})
	b.Run("Execute", func(b *testing.B) {
		store := eventstore.New(newPool(b, benchAppenders+2))
		benchAppenders16(b, func(ctx context.Context) error {
			e := initiated()
			_, err := eventstore.Execute(ctx, store, agg, "pay-"+uuid.NewString(), e.ID,
				func(int, int) ([]eventstore.NewEvent, error) { return []eventstore.NewEvent{e}, nil })
			return err
		})
	})
}

// benchAppenders16 runs command from 16 goroutines and reports events/s and latency percentiles.
func benchAppenders16(b *testing.B, command func(context.Context) error) {
	ctx := context.Background()
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((benchAppenders + procs - 1) / procs)
	var mu sync.Mutex
	var latencies []time.Duration
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			start := time.Now()
			if err := command(ctx); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	reportLatency(b, latencies)
}

// BenchmarkReadLog measures a consumer reading the whole global log of 1M events with ReadLog in batches
// of 1000, as a projection rebuild does.
func BenchmarkReadLog(b *testing.B) {
	const events, batch = 1_000_000, 1000
	ctx := context.Background()
	store := eventstore.New(newPool(b, 4))
	seedStart := time.Now()
	// 1000 account streams of 1000 versions each, in one statement: seeding through Append would take
	// longer than the benchmark itself.
	if _, err := store.Pool().Exec(ctx, fmt.Sprintf(`
		insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload)
		select gen_random_uuid(), 'user' || (g %% 1000) || '@okbank', 'account', 'AccountCredited', g / 1000 + 1,
		       jsonb_build_object('payment_id', gen_random_uuid(), 'amount_paise', 12500, 'balance_after_paise', g)
		from generate_series(0, %d) as g`, events-1)); err != nil {
		b.Fatalf("seed: %v", err)
	}
	// Steady state for the reads: statistics, and hint bits and the visibility map already set.
	if _, err := store.Pool().Exec(ctx, `vacuum analyze events`); err != nil {
		b.Fatalf("vacuum: %v", err)
	}
	b.Logf("seeded %d events in %v", events, time.Since(seedStart).Round(time.Millisecond))

	var latencies []time.Duration
	for b.Loop() {
		pos, read := eventstore.Start, 0
		for {
			start := time.Now()
			evs, err := store.ReadLog(ctx, pos, batch)
			if err != nil {
				b.Fatal(err)
			}
			latencies = append(latencies, time.Since(start))
			if len(evs) == 0 {
				break
			}
			read += len(evs)
			pos = evs[len(evs)-1].Position
		}
		if read != events {
			b.Fatalf("read %d events, want %d", read, events)
		}
	}
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
	reportLatency(b, latencies)
}

// reportLatency reports the p50 and p99 of one operation (a command, or a batch read).
func reportLatency(b *testing.B, latencies []time.Duration) {
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	at := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
