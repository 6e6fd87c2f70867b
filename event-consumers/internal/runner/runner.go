package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"upi/shared/contract/events"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/observability"
)

// Options tune a Runner; the zero value of a field takes its default.
type Options struct {
	BatchSize    int           // events per batch (default 500)
	MinPoll      time.Duration // first wait after an empty poll (default 5ms)
	MaxPoll      time.Duration // longest wait between polls while idle (default 500ms)
	LockRetry    time.Duration // how often a standby tries the worker lock (default 1s)
	RetryMax     time.Duration // cap of the back-off between retries of a failing batch (default 30s)
	MonitorEvery time.Duration // how often lag and horizon metrics are refreshed (default 5s)
	StallAfter   time.Duration // a consumer behind and not advancing for this long is logged (default 30s)
	// Partitions is how many workers each Partitioned consumer is split into (default 1: one worker, as
	// an unpartitioned consumer; partition.go).
	Partitions int
	// Patience is, by consumer name, how long a consumer that no one waits on within milliseconds (a
	// merchant's reports, settlement, webhook deliveries) waits after a hint before it reads. Below
	// saturation a payment's events then come to it in one batch, one transaction instead of one each,
	// and the consumers a payment's client does wait on (the workflow, the payments and accounts
	// projections) have the cores to themselves while the payment moves. Absent: it reads at once.
	Patience map[string]time.Duration
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.Partitions <= 0 {
		o.Partitions = 1
	}
	def(&o.MinPoll, 5*time.Millisecond)
	def(&o.MaxPoll, 500*time.Millisecond)
	def(&o.LockRetry, time.Second)
	def(&o.RetryMax, 30*time.Second)
	def(&o.MonitorEvery, 5*time.Second)
	def(&o.StallAfter, 30*time.Second)
	return o
}

// Runner runs consumers against one database.
type Runner struct {
	pool    *pgxpool.Pool
	connect Connector
	log     *slog.Logger
	m       *metrics
	opts    Options
	// logs is the log as the consumers read it: the consumers of this process follow it at about the same
	// place, so each run of it is read from the database and decoded once for all of them.
	logs *eventstore.LogCache
	// moves are the checkpoint moves of batches with nothing else to write, several to a statement.
	moves *checkpointMoves
}

// New returns a runner on pool, registering its metrics on reg.
func New(pool *pgxpool.Pool, log *slog.Logger, reg prometheus.Registerer, opts Options) *Runner {
	cfg := pool.Config().ConnConfig
	opts = opts.withDefaults()
	return &Runner{
		pool: pool,
		connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, cfg.Copy())
		},
		log:   log,
		m:     newMetrics(reg),
		opts:  opts,
		logs:  eventstore.NewLogCache(pool, 4*opts.BatchSize, eventstore.DecodeWith(events.Decode), opts.MinPoll),
		moves: &checkpointMoves{pool: pool},
	}
}

// Partitions is how many workers the runner splits c into: Options.Partitions if c is Partitioned, else 1.
func (r *Runner) Partitions(c Consumer) int {
	if _, ok := c.(Partitioned); ok {
		return r.opts.Partitions
	}
	return 1
}

// Run runs every consumer until ctx ends, each with its own checkpoint, lock and loop (a Partitioned
// consumer one per partition, Options.Partitions), sharing one hint listener. It returns nil when ctx
// ends; a consumer never gives up on its own (it retries and reports).
func (r *Runner) Run(ctx context.Context, consumers ...Consumer) error {
	workers := make([]*worker, 0, len(consumers))
	seen := map[string]bool{}
	for _, c := range consumers {
		if seen[c.Name()] || strings.Contains(c.Name(), "#") {
			return fmt.Errorf("two consumers named %q, or a name with a '#'", c.Name())
		}
		seen[c.Name()] = true
		n := r.Partitions(c)
		for k := range n {
			pc, splittable := c.(Partitioned)
			w := &worker{r: r, name: c.Name(), base: c.Name(), splittable: splittable, patience: r.opts.Patience[c.Name()]}
			if splittable {
				w.key = pc.PartitionKey
			}
			if n > 1 {
				w.part = newPartition(c.Name(), k, n, c.(Partitioned).PartitionKey)
				w.name = PartitionName(c.Name(), k, n)
			}
			w.log = r.log.With("consumer", w.name)
			switch c := c.(type) {
			case Projection:
				w.proj = c
				w.apply = r.projectionStep(w, c)
				w.isolate = r.projectionIsolate(w, c)
			case Processor:
				w.proc = c
				w.apply = r.processorStep(w, c)
				w.isolate = r.processorIsolate(w, c)
			default:
				return fmt.Errorf("consumer %q is neither a Projection nor a Processor", c.Name())
			}
			if _, own := c.(SelfTraced); !own {
				w.apply = traced(w.name, w.apply)
			}
			workers = append(workers, w)
		}
	}
	// Each hint first makes the log cache ask the database again, then wakes the consumers.
	hints := NewHints(r.pool, r.log, r.logs.Appended)
	var wg sync.WaitGroup
	wg.Go(func() { hints.Run(ctx) })
	wg.Go(func() { Every(ctx, r.opts.MonitorEvery, r.measureHorizon) })
	for _, w := range workers {
		wake := hints.Subscribe()
		wg.Go(func() { w.run(ctx, wake) })
		wg.Go(func() { w.monitor(ctx) })
	}
	wg.Wait()
	return nil
}

// projectionStep applies a batch and moves the checkpoint in one transaction, with the events it sets
// aside (hold: those of held streams). The checkpoint row is updated (and so locked) first: a rebuild
// holding it makes this wait and then fail the compare-and-set. The transaction begins with custom plans
// (customPlans) in the same round trip: below saturation most batches hold an event or two, and each
// round trip is a wake-up of the backend.
//
// A partition's transaction moves NAME too, last (worker.syncName).
func (r *Runner) projectionStep(w *worker, p Projection) stepFunc {
	sel, _ := p.(Selective)
	return func(ctx context.Context, from, to eventstore.Position, batch []eventstore.Event, hold []heldEvent) error {
		if len(hold) == 0 && (len(batch) == 0 || sel != nil && !slices.ContainsFunc(batch, sel.Uses)) {
			// Nothing to write: the compare-and-set alone, shared with the other consumers' that have nothing
			// to write either (checkpointMoves), which waits for a rebuild just the same.
			return w.advance(ctx, from, to)
		}
		tx, err := r.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: beginWithCustomPlans})
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
		if err := advanceCheckpoint(ctx, tx, w.name, from, to); err != nil {
			return err
		}
		if err := holdEvents(ctx, tx, w.name, hold); err != nil {
			return err
		}
		if len(batch) > 0 {
			if err := p.Apply(ctx, tx, batch); err != nil {
				return err
			}
		}
		if err := w.syncName(ctx, tx); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit batch: %w", err)
		}
		return nil
	}
}

// processorStep handles a batch outside any transaction, then moves the checkpoint (with the events it
// sets aside, hold, when there are any). A partition moves NAME with its own row (worker.advance,
// worker.syncName).
func (r *Runner) processorStep(w *worker, p Processor) stepFunc {
	return func(ctx context.Context, from, to eventstore.Position, batch []eventstore.Event, hold []heldEvent) error {
		if len(batch) > 0 {
			if err := p.Handle(ctx, batch); err != nil {
				return err
			}
		}
		if len(hold) > 0 {
			return commitHeld(ctx, r, w, from, to, hold)
		}
		return w.advance(ctx, from, to)
	}
}

// stepFunc applies batch, read after from, sets aside hold, and moves the checkpoint to `to` (the last
// event of both).
type stepFunc func(ctx context.Context, from, to eventstore.Position, batch []eventstore.Event, hold []heldEvent) error

// traced gives each batch of a consumer a span when tracing is on: "consume NAME", in the trace of the
// request or step that appended the batch's events when they all come from one (a payment's projection
// and relay spans sit in its trace), else a root span linked to each of those traces.
func traced(name string, step stepFunc) stepFunc {
	if !observability.Tracing() {
		return step
	}
	tracer := observability.Tracer("event-consumers/runner")
	return func(ctx context.Context, from, to eventstore.Position, batch []eventstore.Event, hold []heldEvent) error {
		if len(batch) == 0 {
			return step(ctx, from, to, batch, hold)
		}
		parents := make([]string, len(batch))
		for i, e := range batch {
			parents[i] = observability.TraceParentOf(e.Metadata)
		}
		_, span := observability.StartBatch(ctx, tracer, "consume "+name, parents,
			attribute.String("upi.consumer", name), attribute.Int("upi.events", len(batch)),
			attribute.String("upi.last_position", batch[len(batch)-1].Position.String()))
		defer span.End()
		// The step runs outside the span: its statements (a checkpoint, a few set-wise writes) would be a
		// third of a payment's spans, and the batch's span already says how long they took.
		err := step(ctx, from, to, batch, hold)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		return err
	}
}

// worker is the loop of one consumer, or of one partition of a consumer, in this process.
type worker struct {
	r *Runner
	// name is the worker's checkpoint row, lock and metrics label: the consumer's name, or its
	// partition's (NAME#K/N); base is the consumer's name.
	name, base string
	// patience is how long the worker waits after a hint before it reads (Options.Patience).
	patience time.Duration
	// part is the worker's partition; nil for an unpartitioned consumer. splittable is set when the
	// consumer is Partitioned, partitions or not (it may have rows of another layout), key is then its
	// PartitionKey; old are the other layouts ahead of NAME when the worker loaded its checkpoint, oldMax
	// the furthest of their rows (partition.go, "Changing the layout").
	part       *partition
	splittable bool
	key        func(eventstore.Event) string
	old        []oldLayout
	oldMax     eventstore.Position
	log        *slog.Logger
	// proj or proc is the consumer.
	proj    Projection
	proc    Processor
	apply   stepFunc
	isolate isolateFunc
	active  atomic.Bool
	// held are the streams the consumer holds back (quarantine.go), loaded with the checkpoint; only the
	// worker's own loop reads or changes it.
	held map[string]bool
	// heldStreams is len(held), for the monitor; reloadHeld is set by the monitor when the database holds
	// another count (a rebuild or a checkpoint reset changed it), and releaseDue when an operator has
	// released a held stream.
	heldStreams atomic.Int64
	reloadHeld  atomic.Bool
	releaseDue  atomic.Bool
	// nameDue is set when a partition's worker (re)loads its checkpoint: it moves NAME before its next
	// batch (worker.moveName).
	nameDue atomic.Bool
	// position is the checkpoint the active worker follows from; reloadCheckpoint is set by the monitor
	// when the stored one is behind it (moved back by a reset).
	position         atomic.Pointer[eventstore.Position]
	reloadCheckpoint atomic.Bool
}

// run holds the consumer's lock and follows the log, taking the lock again whenever it is lost.
func (w *worker) run(ctx context.Context, wake <-chan struct{}) {
	for ctx.Err() == nil {
		lock, err := acquireLock(ctx, w.r.connect, w.log, "consumer:"+w.name, w.r.opts.LockRetry)
		if err != nil {
			return // ctx ended
		}
		w.log.Info("consumer active")
		w.active.Store(true)
		w.r.m.active.WithLabelValues(w.name).Set(1)

		lctx, cancel := context.WithCancelCause(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := lock.watch(lctx, 2*time.Second); err != nil {
				cancel(err)
			}
		})
		err = w.follow(lctx, wake)
		cancel(nil)
		wg.Wait()
		lock.release()
		w.active.Store(false)
		w.r.m.active.WithLabelValues(w.name).Set(0)
		if ctx.Err() == nil {
			w.log.Warn("consumer lost its worker lock; standing by", "err", errors.Join(err, context.Cause(lctx)))
		}
	}
}

// follow reads and applies batches until ctx ends.
func (w *worker) follow(ctx context.Context, wake <-chan struct{}) error {
	opts := w.r.opts
	var cp eventstore.Position
	loaded := false
	idle := opts.MinPoll
	soon := pendingPoll // the wait while announced events are held back by the horizon
	failures := 0
	for {
		var err error
		if w.reloadCheckpoint.Swap(false) {
			w.log.Info("checkpoint moved back by an operator; reloading")
			loaded = false
		}
		if !loaded {
			w.position.Store(nil)
			if cp, err = w.loadCheckpoint(ctx); err == nil {
				err = w.loadHeld(ctx)
				loaded = err == nil
			}
			if loaded {
				at := cp // a copy: cp itself moves with every batch
				w.position.Store(&at)
				// NAME is moved with every batch; moving it once more when a partition starts costs one
				// statement and puts NAME right after anything that set the rows apart from it.
				w.nameDue.Store(w.part != nil)
			}
		} else if w.reloadHeld.Swap(false) {
			if err = w.loadHeld(ctx); err != nil {
				w.reloadHeld.Store(true)
			}
		}
		if err == nil && w.nameDue.Swap(false) {
			w.moveName(ctx)
		}
		if err == nil && w.releaseDue.Swap(false) {
			if rerr := w.releaseRequested(ctx); rerr != nil && ctx.Err() == nil {
				w.log.Warn("release of quarantined events failed; trying again", "err", rerr)
				w.releaseDue.Store(true)
			}
		}
		if err == nil {
			var n int
			n, err = w.applyNextBatch(ctx, &cp)
			switch {
			case errors.Is(err, errCheckpointMoved):
				w.r.m.checkpointMove.WithLabelValues(w.name).Inc()
				w.log.Info("checkpoint moved by another worker; reloading")
				loaded = false
				continue
			case err == nil && n == opts.BatchSize:
				failures, idle = 0, opts.MinPoll
				continue // more is waiting
			case err == nil && n > 0:
				failures, idle, soon = 0, opts.MinPoll, pendingPoll
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			failures++
			w.r.m.errors.WithLabelValues(w.name).Inc()
			delay := retryDelay(failures, opts.RetryMax)
			w.log.Error("batch failed; retrying", "err", err, "attempt", failures, "retry_in", delay.String(),
				"checkpoint", cp.Token())
			// A failing batch is retried on its own schedule: hints must not turn it into a hot loop.
			if ok, _ := sleep(ctx, delay, nil); !ok {
				return nil
			}
			continue
		}
		wait := idle
		if w.r.logs.Pending(cp) {
			// A hint announced events this consumer has not read: committed, but held back by the horizon
			// until the transactions begun before theirs end, usually within a few milliseconds (the other
			// consumers' batches). Look again soon, backing off only up to MinPoll, rather than wait for a
			// hint that may not come (docs/architecture.md, "Reading the log").
			wait, soon = soon, min(soon*2, opts.MinPoll)
		} else {
			soon = pendingPoll
		}
		ok, woken := sleep(ctx, wait, wake)
		if !ok {
			return nil
		}
		if woken {
			// An append was hinted: its transaction may not be below the horizon yet, so poll fast; a
			// patient consumer first lets the appends of its patience gather (Options.Patience).
			idle = opts.MinPoll
			if w.patience > 0 {
				if ok, _ := sleep(ctx, w.patience, nil); !ok {
					return nil
				}
			}
		} else {
			idle = min(idle*2, opts.MaxPoll)
		}
	}
}

// applyNextBatch reads one batch after *cp and applies it, moving *cp on success. It returns the batch's
// size. The events of held streams are set aside; when the batch fails for a lasting reason, it is
// applied again one event at a time and the events that fail are set aside with their streams
// (quarantine.go).
func (w *worker) applyNextBatch(ctx context.Context, cp *eventstore.Position) (int, error) {
	batch, err := w.r.logs.ReadLog(ctx, *cp, w.r.opts.BatchSize)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	start := time.Now()
	to := batch[len(batch)-1].Position
	read := len(batch)
	batch = w.mine(batch)
	live, hold := w.split(batch)
	if err := w.apply(ctx, *cp, to, live, hold); err != nil {
		if !w.lasting(ctx, err) {
			return 0, err
		}
		w.log.Warn("batch failed; applying its events one by one to set aside those that fail", "err", err)
		if hold, err = w.isolate(ctx, *cp, to, live, hold, err); err != nil {
			return 0, err
		}
	}
	w.noteHeld(hold)
	*cp = to
	w.passedOldLayouts(to)
	w.position.Store(&to)
	w.r.m.batchDuration.WithLabelValues(w.name).Observe(time.Since(start).Seconds())
	w.r.m.applied.WithLabelValues(w.name).Add(float64(len(batch)))
	w.r.m.checkpoint.WithLabelValues(w.name).Set(float64(cp.GlobalPosition))
	return read, nil
}

// pendingPoll is the first wait before a consumer reads again when events it was told of are not below
// the horizon yet (LogCache.Pending).
const pendingPoll = time.Millisecond

// sleep waits d, or less if wake fires; ok is false when ctx ended, woken true when wake fired.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) (ok, woken bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, false
	case <-t.C:
		return true, false
	case <-wake:
		return true, true
	}
}

// retryDelay is a capped exponential back-off: 100ms, 200ms, ... up to max.
func retryDelay(failures int, max time.Duration) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

const setCustomPlans = `set local plan_cache_mode = force_custom_plan`

// beginWithCustomPlans begins a transaction that plans like customPlans, in one round trip (a query
// without arguments goes out in the simple protocol, which takes several statements).
const beginWithCustomPlans = `begin; ` + setCustomPlans

// customPlans makes the transaction plan every statement for its actual arguments. Projections apply a
// batch with a few statements over unnest(array) parameters whose length varies from 1 to the batch
// size; a cached generic plan assumes a fixed row count and can pick a sequential scan of a whole table
// for a batch of one.
func customPlans(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, setCustomPlans); err != nil {
		return fmt.Errorf("set plan mode: %w", err)
	}
	return nil
}
