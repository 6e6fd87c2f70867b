package eventstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrOverloaded marks a command the Committer refused without running it, because more commands were
// waiting than it takes within a caller's patience: nothing was written, and a retry (a second later, with
// the same deterministic ids) is safe. Callers answer it as "overloaded, retry after".
var ErrOverloaded = errors.New("event store overloaded: the command was not run")

// Committer runs concurrent commands in shared transactions (group commit). A command that arrives while
// fewer than Concurrency groups are running starts a group at once, with whatever else is waiting; one
// that arrives while they all run waits for the next group. So at low load a command runs alone, with no
// added latency, and under load commands share round trips, locks and commits. Each command is decided
// under its own stream's lock, fails alone, and is answered only after its group's commit.
//
// Overload is shed, not queued: the queue holds at most MaxQueue commands (one more is refused at once
// with ErrOverloaded), a command that waited longer than MaxWait is refused when its turn comes, and a
// command whose caller has gone (see WithCaller) is dropped before its group begins. Only commands that
// still have someone waiting for them reach the database.
type Committer struct {
	store       *Store
	concurrency int
	maxOps      int
	maxQueue    int
	maxWait     time.Duration
	timeout     time.Duration
	shed        *prometheus.CounterVec

	mu      sync.Mutex
	queue   []*pendingOp
	running int
}

// CommitterOptions tune a Committer; zero fields take their defaults.
type CommitterOptions struct {
	// Concurrency is how many groups run at once (default 2). Fewer groups share more; more groups wait
	// less for each other. On two cores, two groups completed about a tenth more payments a second than
	// four, at about a tenth less CPU each (docs/benchmarks.md); a larger database server may want more.
	Concurrency int
	// MaxOps is the largest group (default 64).
	MaxOps int
	// MaxQueue is how many commands may wait for a group (default 512, eight groups of 64): one more is
	// refused with ErrOverloaded at once.
	MaxQueue int
	// MaxWait is how long a command may wait for its group (default 1s): one that waited longer is refused
	// with ErrOverloaded instead of run, since its caller (the gateway gives up after 5 s) is likely gone.
	MaxWait time.Duration
	// Timeout bounds one group's transaction (default 30s).
	Timeout time.Duration
	// Registry, when set, gets committer_shed_total{reason} (queue_full, waited_too_long, caller_gone).
	Registry prometheus.Registerer
}

type pendingOp struct {
	op     *Op
	caller context.Context // whose Done says the caller has gone
	queued time.Time
	out    Outcome
	err    error
	done   chan struct{}
}

// NewCommitter returns a committer on store.
func NewCommitter(store *Store, opts CommitterOptions) *Committer {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	if opts.MaxOps <= 0 {
		opts.MaxOps = 64
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 512
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	c := &Committer{store: store, concurrency: opts.Concurrency, maxOps: opts.MaxOps, maxQueue: opts.MaxQueue,
		maxWait: opts.MaxWait, timeout: opts.Timeout,
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "committer_shed_total",
			Help: "Commands refused or dropped by the group committer before they ran, by reason " +
				"(queue_full, waited_too_long: answered OVERLOADED; caller_gone: nobody waited)."}, []string{"reason"}),
	}
	if opts.Registry != nil {
		opts.Registry.MustRegister(c.shed)
	}
	return c
}

type callerKey struct{}

// WithCaller returns ctx carrying caller as the context of whoever waits for the command's answer. A
// command's own context usually outlives its caller (it must not be cut midway through a transaction);
// the Committer watches caller instead, and drops a command whose caller has gone before its group begins.
func WithCaller(ctx, caller context.Context) context.Context {
	return context.WithValue(ctx, callerKey{}, caller)
}

// callerOf is the caller WithCaller recorded in ctx, or ctx itself.
func callerOf(ctx context.Context) context.Context {
	if c, ok := ctx.Value(callerKey{}).(context.Context); ok {
		return c
	}
	return ctx
}

// Execute runs op in the next group and returns its result: its own Outcome, or the error of the group's
// transaction (the database failed; a retry finds a committed outcome by the op's deterministic ids), or
// ErrOverloaded when the queue was full or op waited too long (op did not run). Once op's group has begun
// it runs to the end whatever happens to ctx, whose values alone are used: a caller that gives up does not
// abort a transaction that holds other callers' commands. A caller that gives up before (ctx's caller,
// WithCaller, ends) gets its error at once and op is dropped.
func (c *Committer) Execute(ctx context.Context, op *Op) (Result, error) {
	p := &pendingOp{op: op, caller: callerOf(ctx), queued: time.Now(), done: make(chan struct{})}
	c.mu.Lock()
	if len(c.queue) >= c.maxQueue {
		c.mu.Unlock()
		c.shed.WithLabelValues("queue_full").Inc()
		return Result{}, ErrOverloaded
	}
	c.queue = append(c.queue, p)
	lead := c.running < c.concurrency
	if lead {
		c.running++
	}
	c.mu.Unlock()
	if lead {
		go c.lead(context.WithoutCancel(ctx))
	}
	select {
	case <-p.done:
	case <-p.caller.Done():
		// Nobody waits for the answer any more: if op's group has not begun, it drops op; if it has, op
		// commits or not on its own, and a retry finds out which by op's deterministic ids.
		return Result{}, context.Cause(p.caller)
	}
	if p.err != nil {
		return Result{}, p.err
	}
	return p.out.Result, p.out.Err
}

// lead runs groups of whatever is queued until the queue is empty.
func (c *Committer) lead(ctx context.Context) {
	for {
		c.mu.Lock()
		batch := c.take()
		if batch == nil {
			c.running--
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if len(batch) == 0 {
			continue // everything taken was shed
		}

		ops := make([]*Op, len(batch))
		for i, p := range batch {
			ops[i] = p.op
		}
		gctx, cancel := context.WithTimeout(ctx, c.timeout)
		out, err := c.store.ExecuteAll(gctx, ops)
		cancel()
		for i, p := range batch {
			if err != nil {
				p.err = err
			} else {
				p.out = out[i]
			}
			close(p.done)
		}
	}
}

// take removes up to maxOps commands from the head of the queue (c.mu held) and returns those still worth
// running, answering the others: a command whose caller has gone is dropped, one that waited longer than
// maxWait is refused with ErrOverloaded. It returns nil when the queue is empty.
func (c *Committer) take() []*pendingOp {
	n := min(len(c.queue), c.maxOps)
	if n == 0 {
		return nil
	}
	head := c.queue[:n:n]
	c.queue = c.queue[n:]
	batch := make([]*pendingOp, 0, n)
	now := time.Now()
	for _, p := range head {
		switch {
		case p.caller.Err() != nil:
			c.shed.WithLabelValues("caller_gone").Inc()
			p.err = context.Cause(p.caller)
			close(p.done)
		case now.Sub(p.queued) > c.maxWait:
			c.shed.WithLabelValues("waited_too_long").Inc()
			p.err = ErrOverloaded
			close(p.done)
		default:
			batch = append(batch, p)
		}
	}
	return batch
}
