package runner_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"upi/event-consumers/internal/adapters/postgres/projections"
	"upi/event-consumers/internal/app/ledger"
	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// recording is a partitioned projection that records every event it applies, in the batch's own
// transaction, with a sequence number: an event applied twice shows up as two rows, one skipped as none,
// and the sequence numbers of a key's rows give the order its events were applied in.
type recording struct{ name string }

func (r recording) Name() string                           { return r.name }
func (r recording) Tables() []string                       { return []string{"recorded"} }
func (r recording) PartitionKey(e eventstore.Event) string { return e.AggregateID }
func (r recording) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	ids, keys := make([]uuid.UUID, len(batch)), make([]string, len(batch))
	txs, gps, vs := make([]int64, len(batch)), make([]int64, len(batch)), make([]int32, len(batch))
	for i, e := range batch {
		ids[i], keys[i] = e.ID, e.AggregateID
		txs[i], gps[i], vs[i] = int64(e.Position.TxID), e.Position.GlobalPosition, int32(e.Version)
	}
	_, err := tx.Exec(ctx, `insert into recorded (event_id, key, tx, gp, version)
		select id, key, tx, gp, v from unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::int[]) with ordinality
			as u(id, key, tx, gp, v, o) order by o`, ids, keys, txs, gps, vs)
	return err
}

var _ runner.Partitioned = recording{}

// appendTick appends one synthetic event to stream key at its next version, or appends and rolls back.
func appendTick(ctx context.Context, pool *pgxpool.Pool, key string, rollback bool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock(hashtextextended($1, 0))`, key); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload)
			select $1, $2::text, 'test', 'Tick', coalesce(max(version), 0) + 1, '{}' from events where aggregate_id = $2::text`,
			uuid.New(), key); err != nil {
			return err
		}
		if rollback {
			return errRolledBack
		}
		return nil
	})
}

var errRolledBack = fmt.Errorf("rolled back on purpose")

// writeTicks runs writers concurrent writers, each appending n events over keys streams, one in five
// rolled back, with random pauses.
func writeTicks(t *testing.T, ctx context.Context, pool *pgxpool.Pool, writers, n, keys int, seed uint64) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for range n {
				key := "stream-" + strconv.Itoa(rng.IntN(keys))
				err := appendTick(ctx, pool, key, rng.IntN(5) == 0)
				if err != nil && err != errRolledBack {
					t.Error(err)
					return
				}
				if rng.IntN(4) == 0 {
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
}

// checkRecorded fails unless every event of the log was recorded exactly once, each stream's in version
// order.
func checkRecorded(t *testing.T, ctx context.Context, pool *pgxpool.Pool) {
	t.Helper()
	var logSize, rows, distinct, disordered int
	if err := pool.QueryRow(ctx, `select (select count(*) from events), count(*), count(distinct event_id),
			(select count(*) from (select key, array_agg(version order by seq) as applied,
				array_agg(version order by version) as logged from recorded group by key) k where applied <> logged)
		from recorded`).Scan(&logSize, &rows, &distinct, &disordered); err != nil {
		t.Fatal(err)
	}
	if rows != logSize || distinct != logSize || disordered != 0 {
		t.Fatalf("the log holds %d events; %d recorded (%d distinct); %d streams applied out of order",
			logSize, rows, distinct, disordered)
	}
}

// watchName checks, until ctx ends, that NAME never claims an event that is not applied: every event up
// to NAME is recorded (once), in one snapshot. It returns how many looks it took.
func watchName(t *testing.T, ctx context.Context, pool *pgxpool.Pool, name string) (looks *atomic.Int64, wait func()) {
	looks = &atomic.Int64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var logged, recorded int
			err := pool.QueryRow(ctx, `with n as (select tx_id, global_position from projection_checkpoints where name = $1)
				select (select count(*) from events e, n where (e.tx_id, e.global_position) <= (n.tx_id, n.global_position)),
				       (select count(*) from recorded r, n where (r.tx, r.gp) <= (n.tx_id::text::bigint, n.global_position))`,
				name).Scan(&logged, &recorded)
			if err != nil {
				if ctx.Err() == nil {
					t.Error(err)
				}
				return
			}
			if logged != recorded {
				t.Errorf("%s claims %d events applied; %d are recorded", name, logged, recorded)
				return
			}
			looks.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return looks, func() { <-done }
}

// checkNameIsMinimum fails unless NAME is the least of the layout's partitions' rows.
func checkNameIsMinimum(t *testing.T, ctx context.Context, pool *pgxpool.Pool, name string, n int) {
	t.Helper()
	var ok bool
	var rows int
	if err := pool.QueryRow(ctx, `select (select (tx_id, global_position) from projection_checkpoints where name = $1) =
			(select (tx_id, global_position) from projection_checkpoints where name = any($2)
			 order by tx_id, global_position limit 1),
			(select count(*) from projection_checkpoints where name = any($2))`,
		name, runner.PartitionNames(name, n)).Scan(&ok, &rows); err != nil {
		t.Fatal(err)
	}
	if !ok || rows != n {
		t.Fatalf("%s is not the minimum of its %d partitions (%d rows)", name, n, rows)
	}
}

func createRecorded(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `create table recorded (seq bigserial, event_id uuid, key text,
		tx bigint, gp bigint, version int)`); err != nil {
		t.Fatal(err)
	}
}

// N partition workers in each of two runners (two replicas) follow concurrent writers whose transactions
// sometimes roll back; one runner is stopped half-way and the other takes its partitions over. Every event
// is applied exactly once, each stream in order, and NAME never runs ahead of what is applied and ends at
// the minimum of the partitions.
func TestPartitionsApplyEveryEventOnceInStreamOrder(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 3} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			pool, _ := testenv.PostgresPool(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			createRecorded(t, pool)
			opts := fastOpts()
			opts.Partitions = n
			c := recording{name: "recording"}
			stopA := start(t, pool, opts, c)
			start(t, pool, opts, c)
			looks, watched := watchName(t, ctx, pool, c.name)

			writeTicks(t, ctx, pool, 4, 60, 12, uint64(n))
			stopA() // whichever partitions it ran, the other runner must take them over
			writeTicks(t, ctx, pool, 4, 60, 12, uint64(n)+100)
			names := append(runner.PartitionNames(c.name, n), c.name)
			waitCaughtUp(t, pool, names...)
			cancel()
			watched()
			checkRecorded(t, context.Background(), pool)
			checkNameIsMinimum(t, context.Background(), pool, c.name, n)
			t.Logf("NAME checked %d times while the partitions ran", looks.Load())
		})
	}
}

// Live partition workers (two in each of two runners) build the accounts and payments projections while
// writers append and each projection is rebuilt for the same layout; then the tables equal a fresh
// replay's row for row, and every checkpoint row (NAME and its partitions) stands at the end of the log.
func TestRebuildWithPartitionsWhileLive(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	bank := workload.New(eventstore.New(pool))
	vpas := openAccounts(t, ctx, bank, 10)
	opts := fastOpts()
	opts.Partitions = 2
	projs := []runner.Projection{projections.Accounts{}, projections.Payments{}}
	start(t, pool, opts, projections.Accounts{}, projections.Payments{})
	start(t, pool, opts, projections.Accounts{}, projections.Payments{})
	if err := bank.Random(ctx, rand.New(rand.NewPCG(3, 4)), vpas, 60); err != nil {
		t.Fatal(err)
	}

	stop := payInBackground(t, ctx, bank, vpas, 11)
	for _, p := range projs {
		if _, err := runner.RebuildPartitioned(ctx, pool, testLog(t), p, 29, 2); err != nil {
			t.Fatal(err)
		}
	}
	// More work for the live partitions after the swap, and the ledger check while they run at different
	// places in the log: it compares each row with the replay at its own partition's checkpoint.
	time.Sleep(300 * time.Millisecond)
	for range 3 {
		rep, err := ledger.New(projections.NewLedgerStore(pool), ledger.Options{}).Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK {
			t.Fatalf("ledger check with partitions under load:\n%s", strings.Join(rep.Lines(), "\n"))
		}
	}
	stop()
	var names []string
	for _, p := range projs {
		names = append(names, p.Name())
		names = append(names, runner.PartitionNames(p.Name(), 2)...)
	}
	waitCaughtUp(t, pool, names...)
	if err := workload.Verify(ctx, pool, bank.Expected()); err != nil {
		t.Fatalf("after a rebuild under load with partitions: %v", err)
	}
	for _, p := range projs {
		checkNameIsMinimum(t, ctx, pool, p.Name(), 2)
	}

	var tables []string
	for _, p := range projs {
		tables = append(tables, p.Tables()...)
	}
	for _, tb := range tables {
		if _, err := pool.Exec(ctx, `create table snap_`+tb+` as select * from `+tb); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range projs {
		if _, err := runner.RebuildPartitioned(ctx, pool, testLog(t), p, 0, 2); err != nil {
			t.Fatal(err)
		}
	}
	for _, tb := range tables {
		var live, diff int
		if err := pool.QueryRow(ctx, `select (select count(*) from `+tb+`), (select count(*) from (
			(select * from `+tb+` except all select * from snap_`+tb+`)
			union all
			(select * from snap_`+tb+` except all select * from `+tb+`)) d)`).Scan(&live, &diff); err != nil {
			t.Fatal(err)
		}
		if diff != 0 || (live == 0 && tb != "refunds" && tb != "collect_requests" && tb != "withdrawals") {
			t.Errorf("table %s: %d rows, %d differ from the live partitions'", tb, live, diff)
		}
	}
	waitCaughtUp(t, pool, names...)
}

// stalling is recording with one stream that cannot be applied while stall is set (a transient failure:
// the batch is retried, not quarantined), so that the partition owning it falls behind the others.
type stalling struct {
	recording
	stream string
	stall  *atomic.Bool
}

func (s stalling) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	if s.stall.Load() {
		for _, e := range batch {
			if e.AggregateID == s.stream {
				return fmt.Errorf("stalled on purpose: %w", eventstore.ErrUnavailable)
			}
		}
	}
	return s.recording.Apply(ctx, tx, batch)
}

// The layout changes 1 -> 2 -> 1 in the middle of a log, each time after the consumer caught up and
// stopped, then 1 -> 2 -> 3 -> 1 with one partition held back each time it stops, so that the others are
// ahead of NAME when the next layout starts: no event applied twice or skipped, each stream in order, and
// NAME past the old layouts' rows at the end.
func TestPartitionLayoutChanges(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	createRecorded(t, pool)
	var stall atomic.Bool
	c := stalling{recording: recording{name: "recording"}, stream: "stream-3", stall: &stall}
	run := func(n int) (stop func()) {
		opts := fastOpts()
		opts.Partitions = n
		return start(t, pool, opts, c)
	}
	// otherRows counts the rows of other layouts than n still ahead of NAME.
	otherRows := func(n int) int {
		var rows int
		if err := pool.QueryRow(ctx, `select count(*) from projection_checkpoints o, projection_checkpoints c
			where c.name = 'recording' and o.name like 'recording#%' and o.name not like $1
			  and (o.tx_id, o.global_position) > (c.tx_id, c.global_position)`, "%/"+strconv.Itoa(n)).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		return rows
	}
	layout := func(n int) []string { return append(runner.PartitionNames(c.name, n), c.name) }

	stop := run(1)
	writeTicks(t, ctx, pool, 3, 40, 8, 1)
	waitCaughtUp(t, pool, c.name)
	stop()
	stop = run(2)
	writeTicks(t, ctx, pool, 3, 40, 8, 2)
	waitCaughtUp(t, pool, layout(2)...)
	checkNameIsMinimum(t, ctx, pool, c.name, 2)
	stop()
	stop = run(1)
	writeTicks(t, ctx, pool, 3, 40, 8, 3)
	waitCaughtUp(t, pool, c.name)
	if rows := otherRows(1); rows != 0 {
		t.Fatalf("%d rows of the old layout ahead of NAME", rows)
	}
	stop()
	checkRecorded(t, ctx, pool)

	// Each layout stops with the partition of stream-3 held back, the others ahead of NAME.
	for i, n := range []int{2, 3} {
		stall.Store(true)
		stop = run(n)
		writeTicks(t, ctx, pool, 3, 40, 8, uint64(10+i))
		held := runner.PartitionOf(c.stream, n)
		var others []string
		for k, name := range runner.PartitionNames(c.name, n) {
			if k != held {
				others = append(others, name)
			}
		}
		waitCaughtUp(t, pool, others...)
		stop()
		if name, ahead := checkpoint(t, pool, c.name), checkpoint(t, pool, others[0]); !name.Less(ahead) {
			t.Fatalf("layout %d: NAME %v is not behind its partitions' %v", n, name, ahead)
		}
		stall.Store(false)
	}
	// One worker takes over from three partitions, two of them ahead of it, and a layout of two before them.
	stop = run(1)
	writeTicks(t, ctx, pool, 3, 20, 8, 20)
	waitCaughtUp(t, pool, c.name)
	stop()
	if rows := otherRows(1); rows != 0 {
		t.Fatalf("%d rows of the old layouts ahead of NAME", rows)
	}
	checkRecorded(t, ctx, pool)
}

func checkpoint(t *testing.T, pool *pgxpool.Pool, name string) eventstore.Position {
	t.Helper()
	p, err := runner.LoadCheckpoint(context.Background(), pool, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// histogramSums adds up, over the series of the histogram name whose consumer label starts with prefix,
// the observations' count and sum.
func histogramSums(t *testing.T, reg *prometheus.Registry, name, prefix string) (count uint64, sum float64) {
	t.Helper()
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
				if l.GetName() == "consumer" && strings.HasPrefix(l.GetValue(), prefix) {
					count += m.GetHistogram().GetSampleCount()
					sum += m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	return count, sum
}

// How long partitions wait on their consumer's row: four partitions of the accounts and payments
// projections catch up with a log of a few thousand events while writers append more, and the time their
// batches spend moving NAME (the lock on it included) is measured beside the batches' whole time. A
// measurement, logged, not a benchmark: the only assertion is that the read models are right.
func TestPartitionsNameSyncWait(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx, cancel := context.WithCancel(context.Background())
	bank := workload.New(eventstore.New(pool))
	vpas := openAccounts(t, ctx, bank, 16)
	if err := bank.Random(ctx, rand.New(rand.NewPCG(5, 5)), vpas, 600); err != nil {
		t.Fatal(err)
	}
	opts := fastOpts()
	opts.Partitions = 4
	reg := prometheus.NewRegistry()
	// The consumers' own settings: asynchronous commits (event-consumers' main.go), so that a commit does
	// not hold NAME's lock through a flush of the WAL.
	cfg := pool.Config()
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	async, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(async.Close)
	r := runner.New(async, testLog(t), reg, opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx, projections.Accounts{}, projections.Payments{})
	}()
	t.Cleanup(func() { cancel(); <-done })
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			if err := bank.Random(ctx, rand.New(rand.NewPCG(uint64(w), 6)), vpas, 100); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var names []string
	for _, p := range []string{"accounts", "payments"} {
		names = append(names, p)
		names = append(names, runner.PartitionNames(p, 4)...)
	}
	waitCaughtUp(t, pool, names...)
	if err := workload.Verify(ctx, pool, bank.Expected()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"accounts#", "payments#"} {
		batches, batchSum := histogramSums(t, reg, "consumer_batch_duration_seconds", p)
		syncs, syncSum := histogramSums(t, reg, "consumer_name_sync_seconds", p)
		if batches == 0 || syncs == 0 {
			t.Fatalf("%s: no batches (%d) or no syncs (%d) measured", p, batches, syncs)
		}
		t.Logf("%s partitions: %d batches, %.2f ms each; moving NAME %.3f ms of it (%d times), %.0f%% of their time",
			strings.TrimSuffix(p, "#"), batches, 1000*batchSum/float64(batches), 1000*syncSum/float64(syncs), syncs,
			100*syncSum/batchSum)
	}
}

// The accounts and payments projections change layout (2 -> 3 -> 1) while writers append, each layout
// stopped wherever its partitions are: the ledger check holds while the next layout runs beside the old
// one's rows, and at the end the read models are exactly the workload's.
func TestPartitionLayoutChangesUnderLoadKeepTheBooks(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	bank := workload.New(eventstore.New(pool))
	vpas := openAccounts(t, ctx, bank, 12)
	var stopWriting atomic.Bool
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 13))
			for !stopWriting.Load() {
				if err := bank.Random(ctx, rng, vpas, 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	checkBooks := func(when string) {
		t.Helper()
		rep, err := ledger.New(projections.NewLedgerStore(pool), ledger.Options{}).Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK {
			t.Fatalf("ledger check %s:\n%s", when, strings.Join(rep.Lines(), "\n"))
		}
	}
	for _, n := range []int{2, 3, 1} {
		opts := fastOpts()
		opts.Partitions = n
		stop := start(t, pool, opts, projections.Accounts{}, projections.Payments{})
		time.Sleep(400 * time.Millisecond)
		checkBooks(fmt.Sprintf("with %d partitions", n))
		time.Sleep(200 * time.Millisecond)
		stop()
	}
	stopWriting.Store(true)
	wg.Wait()
	stop := start(t, pool, fastOpts(), projections.Accounts{}, projections.Payments{})
	defer stop()
	waitCaughtUp(t, pool, "accounts", "payments")
	checkBooks("at the end")
	if err := workload.Verify(ctx, pool, bank.Expected()); err != nil {
		t.Fatal(err)
	}
}

// An event held in quarantine by a partition passes, when the layout changes, to the worker that owns it
// in the new one: its stream keeps waiting behind it, and a release by the consumer's name applies it
// once.
func TestPartitionLayoutChangeKeepsTheQuarantine(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	bank := workload.New(eventstore.New(pool))
	vpas := openAccounts(t, ctx, bank, 3)
	sick := vpas[0]
	p := &poisoned{poison: func(e eventstore.Event) bool { return e.AggregateID == sick && e.Version == 3 }}
	p.broken.Store(true)
	opts := fastOpts()
	opts.Partitions = 2
	stop := start(t, pool, opts, p)
	for _, vpa := range []string{sick, vpas[1], sick, vpas[2]} {
		if _, err := bank.Deposit(ctx, vpa, 100); err != nil {
			t.Fatal(err)
		}
	}
	waitCaughtUp(t, pool, append(runner.PartitionNames("accounts", 2), "accounts")...)
	stop()
	held, err := runner.Quarantined(ctx, pool, "accounts", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 2 || held[0].Consumer != runner.PartitionName("accounts", runner.PartitionOf(sick, 2), 2) {
		t.Fatalf("quarantine = %+v; want %s's two events held by its partition", held, sick)
	}

	// One worker now: it holds the stream, and goes on with it after the release.
	opts.Partitions = 1
	start(t, pool, opts, p)
	if _, err := bank.Deposit(ctx, sick, 100); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, pool, "accounts")
	waitFor(t, "the quarantine to pass to the one worker", func() bool {
		h, err := runner.Quarantined(ctx, pool, "accounts", false)
		return err == nil && len(h) == 3 && h[0].Consumer == "accounts" && h[2].Consumer == "accounts"
	})
	if b, v := accountRow(t, pool, sick); b != 20000 || v != 2 {
		t.Fatalf("%s: balance %d v%d, want 20000 v2: its stream must still wait", sick, b, v)
	}
	p.broken.Store(false)
	if n, err := runner.RequestRelease(ctx, pool, "accounts", sick); err != nil || n != 3 {
		t.Fatalf("release covered %d events (%v), want 3", n, err)
	}
	waitFor(t, "the release", func() bool {
		h, err := runner.Quarantined(ctx, pool, "accounts", false)
		return err == nil && len(h) == 0
	})
	if err := workload.VerifyBalances(ctx, pool, bank.Expected()); err != nil {
		t.Fatal(err)
	}
}
