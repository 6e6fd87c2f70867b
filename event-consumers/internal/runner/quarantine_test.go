package runner_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"upi/event-consumers/internal/adapters/postgres/projections"
	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// poisoned is the accounts projection with a bug: while broken, it cannot apply the events poison picks.
type poisoned struct {
	projections.Accounts
	broken atomic.Bool
	poison func(eventstore.Event) bool
}

func (p *poisoned) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	if p.broken.Load() {
		for _, e := range batch {
			if p.poison(e) {
				return fmt.Errorf("cannot apply %s v%d: injected bug", e.AggregateID, e.Version)
			}
		}
	}
	return p.Accounts.Apply(ctx, tx, batch)
}

// accountRow is an account as the read model holds it.
func accountRow(t *testing.T, pool *pgxpool.Pool, vpa string) (balance int64, version int) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), `select balance_paise, version from accounts where vpa = $1`, vpa).
		Scan(&balance, &version); err != nil {
		t.Fatalf("account %s: %v", vpa, err)
	}
	return balance, version
}

// An event the projection cannot apply holds back its own stream only: the stream's later events wait,
// every other stream's events are applied, the checkpoint goes on, the alert gauge counts the held
// events and the event is listed with its error. Released after the fix, the held events are applied in
// order, once each, and the stream follows the log again. The same with the projection in two partitions:
// the partition owning the stream holds it, and the operator's commands, given the consumer's name, reach
// it.
func TestQuarantineHoldsOneStreamAndReleaseAppliesItOnce(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2} {
		t.Run("partitions="+strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			quarantineHoldsOneStream(t, n)
		})
	}
}

func quarantineHoldsOneStream(t *testing.T, partitions int) {
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	bank := workload.New(eventstore.New(pool))
	vpas := openAccounts(t, ctx, bank, 3) // each at version 2: opened, funded 20000
	sick, well := vpas[0], vpas[1:]
	p := &poisoned{poison: func(e eventstore.Event) bool { return e.AggregateID == sick && e.Version == 3 }}
	p.broken.Store(true)

	reg := prometheus.NewRegistry()
	opts := fastOpts()
	opts.Partitions = partitions
	r := runner.New(pool, testLog(t), reg, opts)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(rctx, p) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	for _, vpa := range []string{sick, well[0], sick, well[1], well[0]} {
		if _, err := bank.Deposit(ctx, vpa, 100); err != nil {
			t.Fatal(err)
		}
	}
	// The checkpoint passes every event, the held ones included.
	waitCaughtUp(t, pool, append(runner.PartitionNames("accounts", partitions), "accounts")...)

	if b, v := accountRow(t, pool, well[0]); b != 20200 || v != 4 {
		t.Errorf("%s: balance %d v%d, want 20200 v4: other streams must go on", well[0], b, v)
	}
	if b, v := accountRow(t, pool, well[1]); b != 20100 || v != 3 {
		t.Errorf("%s: balance %d v%d, want 20100 v3", well[1], b, v)
	}
	if b, v := accountRow(t, pool, sick); b != 20000 || v != 2 {
		t.Fatalf("%s: balance %d v%d, want 20000 v2: its stream must wait behind the failed event", sick, b, v)
	}
	held, err := runner.Quarantined(ctx, pool, "accounts", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 2 || held[0].Stream != sick || !strings.Contains(held[0].Error, "injected bug") ||
		held[1].Stream != sick || held[1].Error != "" || !held[0].Position.Less(held[1].Position) {
		t.Fatalf("quarantine = %+v; want %s's v3 with its error, then v4 waiting", held, sick)
	}
	waitFor(t, "the alert gauge at 2", func() bool {
		return gaugeOf(t, reg, "consumer_quarantined_events") == 2
	})

	// A release before the fix: the event fails again and stays held, with both events.
	if n, err := runner.RequestRelease(ctx, pool, "accounts", sick); err != nil || n != 2 {
		t.Fatalf("release request covered %d events (%v), want 2", n, err)
	}
	waitFor(t, "the failed release to be answered", func() bool {
		h, err := runner.Quarantined(ctx, pool, "accounts", false)
		return err == nil && len(h) == 2 && !h[0].ReleaseAsked
	})
	if b, v := accountRow(t, pool, sick); b != 20000 || v != 2 {
		t.Fatalf("after a failed release %s: balance %d v%d, want it untouched", sick, b, v)
	}

	// The fix, then the release: both held events applied in order, once.
	p.broken.Store(false)
	if _, err := runner.RequestRelease(ctx, pool, "accounts", sick); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the release", func() bool {
		h, err := runner.Quarantined(ctx, pool, "accounts", false)
		return err == nil && len(h) == 0
	})
	if b, v := accountRow(t, pool, sick); b != 20200 || v != 4 {
		t.Fatalf("after the release %s: balance %d v%d, want 20200 v4", sick, b, v)
	}
	// The stream follows the log again, and the read model is exactly the log's fold.
	if _, err := bank.Deposit(ctx, sick, 100); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, pool, "accounts")
	if err := workload.VerifyBalances(ctx, pool, bank.Expected()); err != nil {
		t.Fatal(err)
	}
	var moves int
	if err := pool.QueryRow(ctx, `select count(*) from account_transactions where vpa = $1`, sick).Scan(&moves); err != nil {
		t.Fatal(err)
	}
	if moves != 4 {
		t.Fatalf("%s has %d movements, want 4 (each deposit once)", sick, moves)
	}
	waitFor(t, "the alert gauge back at 0", func() bool {
		return gaugeOf(t, reg, "consumer_quarantined_events") == 0
	})
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gaugeOf is the value of the gauge name{consumer="accounts"} in reg, -1 while it has none.
// gaugeOf is the gauge name of the accounts projection: the sum over its partitions when it has some.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	sum, found := 0.0, false
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "consumer" && strings.HasPrefix(l.GetValue()+"#", "accounts#") {
					sum += m.GetGauge().GetValue()
					found = true
				}
			}
		}
	}
	if !found {
		return -1
	}
	return sum
}

// heldRecorder is a processor that records what it handled, in order, and cannot handle one stream's events
// while broken (a lasting failure: Lasting).
type heldRecorder struct {
	mu      sync.Mutex
	handled map[string][]int // stream -> versions, in the order handled
	broken  atomic.Bool
	sick    string
}

var errSick = errors.New("cannot handle this event")

func (p *heldRecorder) Name() string { return "recorder" }

func (p *heldRecorder) Lasting(err error) bool { return errors.Is(err, errSick) }

func (p *heldRecorder) Handle(_ context.Context, batch []eventstore.Event) error {
	for _, e := range batch {
		if p.broken.Load() && e.AggregateID == p.sick && e.Version == 3 {
			return fmt.Errorf("%s v%d: %w", e.AggregateID, e.Version, errSick)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range batch {
		p.handled[e.AggregateID] = append(p.handled[e.AggregateID], e.Version)
	}
	return nil
}

func (p *heldRecorder) versions(stream string) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.handled[stream])
}

// The same for a processor (the workflow's case): the failed event and those behind it wait, the other
// streams are handled, and the release hands the held events over in order; each stream's events are
// handled in version order, the held ones after the release only.
func TestQuarantineOfAProcessor(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	bank := workload.New(eventstore.New(pool))
	vpas := openAccounts(t, ctx, bank, 2)
	sick, well := vpas[0], vpas[1]
	p := &heldRecorder{handled: map[string][]int{}, sick: sick}
	p.broken.Store(true)
	start(t, pool, fastOpts(), p)
	for _, vpa := range []string{sick, well, sick, well} {
		if _, err := bank.Deposit(ctx, vpa, 100); err != nil {
			t.Fatal(err)
		}
	}
	waitCaughtUp(t, pool, "recorder")
	if got := p.versions(well); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("%s handled %v, want [1 2 3 4]", well, got)
	}
	if got := p.versions(sick); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("%s handled %v, want [1 2]: v3 failed and v4 waits behind it", sick, got)
	}
	held, err := runner.Quarantined(ctx, pool, "recorder", false)
	if err != nil || len(held) != 2 || !strings.Contains(held[0].Error, "cannot handle") {
		t.Fatalf("quarantine = %+v, %v", held, err)
	}
	p.broken.Store(false)
	if _, err := runner.RequestRelease(ctx, pool, "recorder", sick); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the release", func() bool { return fmt.Sprint(p.versions(sick)) == "[1 2 3 4]" })
	if _, err := bank.Deposit(ctx, sick, 100); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, pool, "recorder")
	waitFor(t, "the stream to follow the log", func() bool { return fmt.Sprint(p.versions(sick)) == "[1 2 3 4 5]" })
}
