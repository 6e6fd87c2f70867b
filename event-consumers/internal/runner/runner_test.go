package runner_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"upi/event-consumers/internal/adapters/postgres/projections"
	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/shared/contract/events"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// testLog logs warnings and errors into the test's output.
func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func fastOpts() runner.Options {
	return runner.Options{BatchSize: 50, LockRetry: 50 * time.Millisecond, MonitorEvery: 200 * time.Millisecond,
		RetryMax: 200 * time.Millisecond}
}

// start runs a runner with the given consumers until the test ends (or stop is called).
func start(t testing.TB, pool *pgxpool.Pool, opts runner.Options, consumers ...runner.Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := runner.New(pool, testLog(t), prometheus.NewRegistry(), opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(ctx, consumers...); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// payInBackground makes random payments among vpas from three writers until the returned stop is called,
// which waits for them.
func payInBackground(t *testing.T, ctx context.Context, bank *workload.Bank, vpas []string, seed uint64) (stop func()) {
	t.Helper()
	var done atomic.Bool
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), seed))
			for !done.Load() {
				if err := bank.Random(ctx, rng, vpas, 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	return func() { done.Store(true); wg.Wait() }
}

// openAccounts opens n accounts with some money.
func openAccounts(t *testing.T, ctx context.Context, bank *workload.Bank, n int) []string {
	t.Helper()
	vpas := make([]string, n)
	for i := range vpas {
		vpas[i] = "user" + strconv.Itoa(i) + "@okbank"
		if _, err := bank.Open(ctx, vpas[i], "client-"+strconv.Itoa(i%3)); err != nil {
			t.Fatal(err)
		}
		if _, err := bank.Deposit(ctx, vpas[i], 20000); err != nil {
			t.Fatal(err)
		}
	}
	return vpas
}

// waitCaughtUp waits until every named checkpoint is at the last event of the log. Not eventstore.Head:
// that stops at the horizon, which any long transaction in the cluster (another test's) holds back, and a
// checkpoint "at the head" could then be short of events the test appended.
func waitCaughtUp(t testing.TB, pool *pgxpool.Pool, names ...string) eventstore.Position {
	t.Helper()
	return waitCaughtUpWithin(t, pool, 60*time.Second, names...)
}

func waitCaughtUpWithin(t testing.TB, pool *pgxpool.Pool, within time.Duration, names ...string) eventstore.Position {
	t.Helper()
	ctx := context.Background()
	last, err := workload.LastPosition(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(within)
	for {
		ok := true
		for _, n := range names {
			cp, err := runner.LoadCheckpoint(ctx, pool, n)
			if err != nil {
				t.Fatal(err)
			}
			ok = ok && cp == last
		}
		if ok {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumers %v not caught up with %v in time", names, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Concurrent writers (with the horizon making late commits visible in order), and a runner following
// them: the read models must match the workload's expected outcome exactly.
func TestProjectionsFollowConcurrentWriters(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	bank := workload.New(eventstore.New(pool))
	vpas := openAccounts(t, ctx, bank, 12)
	start(t, pool, fastOpts(), projections.Accounts{}, projections.Payments{})

	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			if err := bank.Random(ctx, rand.New(rand.NewPCG(uint64(w), 1)), vpas, 40); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	waitCaughtUp(t, pool, "accounts", "payments")
	if err := workload.Verify(ctx, pool, bank.Expected()); err != nil {
		t.Fatal(err)
	}
}

// selectiveAccounts is the accounts projection (a runner.Selective), recording the events it was asked
// to apply.
type selectiveAccounts struct {
	projections.Accounts
	mu      sync.Mutex
	applied map[uuid.UUID]bool
}

func (s *selectiveAccounts) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	s.mu.Lock()
	for _, e := range batch {
		s.applied[e.ID] = true
	}
	s.mu.Unlock()
	return s.Accounts.Apply(ctx, tx, batch)
}

// A batch holding nothing a selective projection uses moves its checkpoint without applying anything;
// the read model is still exactly right afterwards.
func TestSelectiveProjectionMovesPastBatchesItDoesNotUse(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	store := eventstore.New(pool)
	bank := workload.New(store)
	vpas := openAccounts(t, ctx, bank, 2)
	p := &selectiveAccounts{applied: map[uuid.UUID]bool{}}
	start(t, pool, fastOpts(), p)
	waitCaughtUp(t, pool, "accounts")

	// A payment stream's opening alone: nothing for the accounts projection.
	id := uuid.New()
	if _, err := store.Append(ctx, events.AggregatePayment, id.String(), eventstore.NoStream, []eventstore.NewEvent{{
		ID: id, Type: events.PaymentInitiated, Metadata: events.Metadata{SchemaVersion: events.SchemaVersion},
		Data: events.PaymentInitiatedV1{PaymentID: id.String(), PayerVPA: vpas[0], PayeeVPA: vpas[1], AmountPaise: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, pool, "accounts")
	p.mu.Lock()
	applied := p.applied[id]
	p.mu.Unlock()
	if applied {
		t.Fatal("the accounts projection was asked to apply a batch of a payment's event alone")
	}

	if err := bank.Random(ctx, rand.New(rand.NewPCG(5, 5)), vpas, 20); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, pool, "accounts")
	if err := workload.VerifyBalances(ctx, pool, bank.Expected()); err != nil {
		t.Fatal(err)
	}
}

// auditing wraps a projection and records, in the batch's own transaction, which worker applied which
// batch: a batch applied twice would show up as two rows.
type auditing struct {
	runner.Projection
	worker string
}

func (a auditing) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	if _, err := tx.Exec(ctx, `insert into applied_batches (worker, first_tx, first_pos, n) values ($1, $2, $3, $4)`,
		a.worker, int64(batch[0].Position.TxID), batch[0].Position.GlobalPosition, len(batch)); err != nil {
		return err
	}
	return a.Projection.Apply(ctx, tx, batch)
}

// Two runners (two processes, as far as PostgreSQL can tell: separate sessions) on one projection: only
// one is active at a time, the other takes over when the first stops, and no batch is applied twice.
func TestTwoRunnersNeverApplyTheSameBatch(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `create table applied_batches (worker text, first_tx bigint, first_pos bigint, n int)`); err != nil {
		t.Fatal(err)
	}
	bank := workload.New(eventstore.New(pool))
	vpas := openAccounts(t, ctx, bank, 8)
	stopA := start(t, pool, fastOpts(), auditing{projections.Accounts{}, "a"})
	start(t, pool, fastOpts(), auditing{projections.Accounts{}, "b"})

	rng := rand.New(rand.NewPCG(7, 7))
	if err := bank.Random(ctx, rng, vpas, 60); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, pool, "accounts")
	stopA() // whichever was active, the other one must finish the work
	if err := bank.Random(ctx, rng, vpas, 60); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, pool, "accounts")

	var batches, distinct, events, logSize int
	if err := pool.QueryRow(ctx, `select count(*), count(distinct (first_tx, first_pos)), coalesce(sum(n), 0)
		from applied_batches`).Scan(&batches, &distinct, &events); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `select count(*) from events`).Scan(&logSize); err != nil {
		t.Fatal(err)
	}
	if batches != distinct || events != logSize {
		t.Fatalf("%d batches (%d distinct) covering %d events; the log holds %d", batches, distinct, events, logSize)
	}
	var workers int
	if err := pool.QueryRow(ctx, `select count(distinct worker) from applied_batches`).Scan(&workers); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d batches applied by %d worker(s)", batches, workers)
}

// A projection that cannot apply an event stops there and retries; it never skips the event.
func TestFailingBatchIsRetriedNotSkipped(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	bank := workload.New(eventstore.New(pool))
	vpas := openAccounts(t, ctx, bank, 2)
	f := &flaky{Projection: projections.Accounts{}, failures: 3}
	start(t, pool, fastOpts(), f)
	if _, err := bank.Deposit(ctx, vpas[0], 5); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, pool, "accounts")
	if err := workload.VerifyBalances(ctx, pool, bank.Expected()); err != nil {
		t.Fatal(err)
	}
	if f.calls() < 4 {
		t.Fatalf("applied after %d calls, want the 3 failures retried", f.calls())
	}
}

type flaky struct {
	runner.Projection
	mu       sync.Mutex
	n        int
	failures int
}

func (f *flaky) calls() int { f.mu.Lock(); defer f.mu.Unlock(); return f.n }

func (f *flaky) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	f.mu.Lock()
	f.n++
	fail := f.n <= f.failures
	f.mu.Unlock()
	if err := f.Projection.Apply(ctx, tx, batch); err != nil {
		return err
	}
	if fail {
		return context.DeadlineExceeded // after the writes: they must be rolled back with the checkpoint
	}
	return nil
}
