package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/platform/eventstore"
)

// RebuildResult is what a rebuild did.
type RebuildResult struct {
	Events   int                 // events replayed (of every type; the projection may skip some)
	Position eventstore.Position // the checkpoint the rebuilt tables reflect
	Duration time.Duration
}

// ErrRebuildRunning means another rebuild of the same projection is in progress.
var ErrRebuildRunning = errors.New("a rebuild of this projection is already running")

// defaultRebuildBatch is the batch size of a rebuild when none is given.
const defaultRebuildBatch = 5000

// Rebuild replays the whole log into fresh copies of p's tables while the live tables keep serving
// (blue/green), then swaps them in:
//
//  1. create schema rebuild_NAME with empty copies of p's tables (`like ... including all`);
//  2. replay from the start, batch by batch, with search_path pointing p's unqualified table names at the
//     copies;
//  3. in one transaction: lock the live checkpoint row, catch the copies up to the horizon, move the live
//     tables out and the copies in, set the checkpoint to the copies' position, drop the old tables.
//
// A live worker applying a batch meanwhile waits on the checkpoint row and then fails its compare-and-set,
// so it reloads the new checkpoint and nothing is applied twice or skipped. An event the projection cannot
// apply aborts the rebuild with an error and leaves the live tables untouched.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, p Projection, batchSize int) (RebuildResult, error) {
	return RebuildPartitioned(ctx, pool, log, p, batchSize, 1)
}

// RebuildPartitioned is Rebuild of a projection whose live workers run in `partitions` partitions
// (Options.Partitions; 1 for none, or for a projection that is not Partitioned): the swap locks and sets
// every partition's row as well as NAME, and the rows of any other layout.
func RebuildPartitioned(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, p Projection, batchSize, partitions int) (RebuildResult, error) {
	start := time.Now()
	if batchSize <= 0 {
		batchSize = defaultRebuildBatch
	}
	rb := newRebuild(pool, log, p, batchSize)
	if _, ok := p.(Partitioned); ok && partitions > 1 {
		rb.partitions = partitions
	}

	// One rebuild per projection at a time, across processes; the lock ends with the connection.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild %s: %w", rb.name, err)
	}
	defer conn.Release()
	if err := rb.lock(ctx, conn); err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild %s: %w", rb.name, err)
	}
	defer rb.unlock(ctx, conn)

	if err := rb.createShadow(ctx, conn); err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild %s: prepare shadow tables: %w", rb.name, err)
	}
	if err := rb.replay(ctx); err != nil {
		rb.dropShadow(ctx)
		return RebuildResult{}, fmt.Errorf("rebuild %s: replay after %v: %w", rb.name, rb.pos, err)
	}
	// The swap: short, and serialised with the live worker by the checkpoint row.
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return rb.swap(ctx, tx) }); err != nil {
		rb.dropShadow(ctx)
		return RebuildResult{}, fmt.Errorf("rebuild %s: %w", rb.name, err)
	}
	res := RebuildResult{Events: rb.total, Position: rb.pos, Duration: time.Since(start)}
	log.Info("rebuild done", "projection", rb.name, "events", rb.total, "checkpoint", rb.pos.Token(),
		"duration", res.Duration.Round(time.Millisecond).String())
	return res, nil
}

// rebuild is one rebuild of a projection under way: where its replay has reached in the log.
type rebuild struct {
	pool      *pgxpool.Pool
	log       *slog.Logger
	p         Projection
	name      string
	batchSize int
	// shadow is the schema of the copies the log is replayed into; old, that of the live tables while
	// they are swapped out. Both are sanitized identifiers.
	shadow, old string
	pos         eventstore.Position // the last event replayed
	total       int                 // events replayed
	// partitions is the layout the live workers run (1: unpartitioned).
	partitions int
}

func newRebuild(pool *pgxpool.Pool, log *slog.Logger, p Projection, batchSize int) *rebuild {
	name := p.Name()
	return &rebuild{pool: pool, log: log, p: p, name: name, batchSize: batchSize, pos: eventstore.Start, partitions: 1,
		shadow: pgx.Identifier{"rebuild_" + name}.Sanitize(), old: pgx.Identifier{"rebuild_" + name + "_old"}.Sanitize()}
}

// lock takes the projection's rebuild lock on conn's session, or fails with ErrRebuildRunning.
func (rb *rebuild) lock(ctx context.Context, conn *pgxpool.Conn) error {
	var got bool
	if err := conn.QueryRow(ctx, `select pg_try_advisory_lock(hashtextextended($1, 0))`, rb.lockKey()).Scan(&got); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if !got {
		return ErrRebuildRunning
	}
	return nil
}

func (rb *rebuild) unlock(ctx context.Context, conn *pgxpool.Conn) {
	conn.Exec(context.WithoutCancel(ctx), `select pg_advisory_unlock(hashtextextended($1, 0))`, rb.lockKey()) //nolint:errcheck // the lock ends with the session anyway
}

func (rb *rebuild) lockKey() string { return "rebuild:" + rb.name }

// createShadow makes empty copies of the projection's tables in the shadow schema, dropping whatever an
// earlier rebuild left.
func (rb *rebuild) createShadow(ctx context.Context, conn *pgxpool.Conn) error {
	ddl := []string{"drop schema if exists " + rb.shadow + " cascade", "drop schema if exists " + rb.old + " cascade",
		"create schema " + rb.shadow}
	for _, t := range rb.p.Tables() {
		id := pgx.Identifier{t}.Sanitize()
		ddl = append(ddl, fmt.Sprintf("create table %s.%s (like public.%s including all)", rb.shadow, id, id))
		// LIKE copies no storage parameters: a table's fillfactor must survive its rebuild.
		var params []string
		if err := conn.QueryRow(ctx, `select coalesce(reloptions, '{}') from pg_class where oid = to_regclass($1)`,
			"public."+id).Scan(&params); err != nil {
			return fmt.Errorf("read storage parameters of %s: %w", t, err)
		}
		if len(params) > 0 {
			ddl = append(ddl, fmt.Sprintf("alter table %s.%s set (%s)", rb.shadow, id, strings.Join(params, ", ")))
		}
	}
	return execAll(ctx, conn, ddl)
}

func (rb *rebuild) dropShadow(ctx context.Context) {
	if _, err := rb.pool.Exec(context.WithoutCancel(ctx), "drop schema if exists "+rb.shadow+" cascade"); err != nil {
		rb.log.Warn("rebuild: shadow tables not dropped", "projection", rb.name, "err", err)
	}
}

// replay is the bulk of the rebuild: one short transaction per batch, so that no transaction holds the
// horizon back for long, until a batch comes back short of a full one.
func (rb *rebuild) replay(ctx context.Context) error {
	for {
		var n int
		err := pgx.BeginFunc(ctx, rb.pool, func(tx pgx.Tx) error {
			if err := rb.useShadow(ctx, tx); err != nil {
				return err
			}
			var err error
			n, err = rb.applyBatch(ctx, tx)
			return err
		})
		if err != nil || n < rb.batchSize {
			return err
		}
		if (rb.total/rb.batchSize)%20 == 0 {
			rb.log.Info("rebuild progress", "projection", rb.name, "events", rb.total)
		}
	}
}

// swap catches the copies up to the horizon and moves them in, in tx, with the live checkpoint rows
// locked: every partition's row (of any layout, in layout and K order), then NAME.
//
// No deadlock is possible with live partition workers: a worker's batch locks its own partition's row
// (its compare-and-set, the first statement of its transaction, or of its one message when the batch
// writes nothing else) and then NAME, the same order as here, and no other partition's row; a worker that
// starts moves NAME alone (worker.moveName), holding no partition's row at all. A worker holding its row
// makes the swap wait until it commits; a worker arriving later waits on its row until the swap commits,
// then fails its compare-and-set against the position the swap set, and reloads.
func (rb *rebuild) swap(ctx context.Context, tx pgx.Tx) error {
	live, rows, err := lockLayout(ctx, tx, rb.name)
	if err != nil {
		return err
	}
	if err := rb.useShadow(ctx, tx); err != nil {
		return err
	}
	if err := rb.catchUp(ctx, tx); err != nil {
		return fmt.Errorf("catch up after %v: %w", rb.pos, err)
	}
	if rb.pos.Less(live) {
		return fmt.Errorf("rebuilt tables reached %v, behind the live checkpoint %v", rb.pos, live)
	}
	for _, r := range rows {
		if rb.pos.Less(r.pos) {
			return fmt.Errorf("rebuilt tables reached %v, behind the live checkpoint %s at %v", rb.pos, r.name, r.pos)
		}
	}
	if err := rb.moveTables(ctx, tx); err != nil {
		return err
	}
	if err := setLayout(ctx, tx, rb.name, rb.partitions, rb.pos); err != nil {
		return fmt.Errorf("set checkpoint: %w", err)
	}
	// The rebuilt tables hold every event, the quarantined ones too (a rebuild fails on any it cannot
	// apply): nothing is held any more, by any partition. The live workers reload their held streams with
	// the checkpoint.
	if _, err := tx.Exec(ctx, `update consumer_quarantine set status = 'released', released_at = now(),
		release_requested_at = null where `+ofConsumer+` and status = 'held'`, rb.name); err != nil {
		return fmt.Errorf("release quarantine: %w", err)
	}
	return nil
}

// catchUp applies, in tx, the batches appended since the bulk replay, until one comes back short.
func (rb *rebuild) catchUp(ctx context.Context, tx pgx.Tx) error {
	for {
		n, err := rb.applyBatch(ctx, tx)
		if err != nil || n < rb.batchSize {
			return err
		}
	}
}

// applyBatch reads the batch after the replay's position and applies it in tx, moving the position on.
// It returns the batch's size.
func (rb *rebuild) applyBatch(ctx context.Context, tx pgx.Tx) (int, error) {
	batch, err := eventstore.ReadLog(ctx, tx, rb.pos, rb.batchSize)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	if err := rb.p.Apply(ctx, tx, batch); err != nil {
		return 0, err
	}
	rb.pos = batch[len(batch)-1].Position
	rb.total += len(batch)
	return len(batch), nil
}

// useShadow points tx's unqualified table names at the copies.
func (rb *rebuild) useShadow(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "set local search_path to "+rb.shadow+", public"); err != nil {
		return err
	}
	return customPlans(ctx, tx)
}

// moveTables moves the live tables out and the copies in, then drops the old tables.
func (rb *rebuild) moveTables(ctx context.Context, tx pgx.Tx) error {
	stmts := []string{"set local search_path to public", "create schema " + rb.old}
	for _, t := range rb.p.Tables() {
		id := pgx.Identifier{t}.Sanitize()
		stmts = append(stmts, "alter table public."+id+" set schema "+rb.old, "alter table "+rb.shadow+"."+id+" set schema public")
	}
	stmts = append(stmts, "drop schema "+rb.old+" cascade", "drop schema "+rb.shadow)
	if err := execAll(ctx, tx, stmts); err != nil {
		return fmt.Errorf("swap tables: %w", err)
	}
	return nil
}

// execAll runs stmts in order, stopping at the first that fails, which it names.
func execAll(ctx context.Context, q execQuerier, stmts []string) error {
	for _, stmt := range stmts {
		if _, err := q.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}

// Rebuilder rebuilds a fixed set of projections by name (app.Rebuilder).
type Rebuilder struct {
	pool        *pgxpool.Pool
	log         *slog.Logger
	projections []Projection
	batchSize   int
	partitions  int
}

// NewRebuilder returns a rebuilder of projections, in that order, replaying batchSize events at a time,
// for live workers that run in `partitions` partitions (Options.Partitions).
func NewRebuilder(pool *pgxpool.Pool, log *slog.Logger, projections []Projection, batchSize, partitions int) *Rebuilder {
	return &Rebuilder{pool: pool, log: log, projections: projections, batchSize: batchSize, partitions: partitions}
}

// Projections names the projections, in order.
func (r *Rebuilder) Projections() []string {
	names := make([]string, len(r.projections))
	for i, p := range r.projections {
		names[i] = p.Name()
	}
	return names
}

// Rebuild rebuilds the projection called name.
func (r *Rebuilder) Rebuild(ctx context.Context, name string) error {
	for _, p := range r.projections {
		if p.Name() == name {
			_, err := RebuildPartitioned(ctx, r.pool, r.log, p, r.batchSize, r.partitions)
			return err
		}
	}
	return fmt.Errorf("rebuild %s: no such projection", name)
}
