package eventstore

import (
	"context"
	"sync"
	"time"
)

// Committer runs concurrent commands in shared transactions (group commit). A command that arrives while
// fewer than Concurrency groups are running starts a group at once, with whatever else is waiting; one
// that arrives while they all run waits for the next group. So at low load a command runs alone, with no
// added latency, and under load commands share round trips, locks and commits. Each command is decided
// under its own stream's lock, fails alone, and is answered only after its group's commit.
type Committer struct {
	store       *Store
	concurrency int
	maxOps      int
	timeout     time.Duration

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
	// Timeout bounds one group's transaction (default 30s).
	Timeout time.Duration
}

type pendingOp struct {
	op   *Op
	out  Outcome
	err  error
	done chan struct{}
}

// NewCommitter returns a committer on store.
func NewCommitter(store *Store, opts CommitterOptions) *Committer {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	if opts.MaxOps <= 0 {
		opts.MaxOps = 64
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	return &Committer{store: store, concurrency: opts.Concurrency, maxOps: opts.MaxOps, timeout: opts.Timeout}
}

// Execute runs op in the next group and returns its result: its own Outcome, or the error of the group's
// transaction (the database failed; a retry finds a committed outcome by the op's deterministic ids).
// Once op is queued it is run to the end whatever happens to ctx, whose values alone are used: a caller
// that gives up does not abort a transaction that holds other callers' commands.
func (c *Committer) Execute(ctx context.Context, op *Op) (Result, error) {
	p := &pendingOp{op: op, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	lead := c.running < c.concurrency
	if lead {
		c.running++
	}
	c.mu.Unlock()
	if lead {
		go c.lead(context.WithoutCancel(ctx))
	}
	<-p.done
	if p.err != nil {
		return Result{}, p.err
	}
	return p.out.Result, p.out.Err
}

// lead runs groups of whatever is queued until the queue is empty.
func (c *Committer) lead(ctx context.Context) {
	for {
		c.mu.Lock()
		n := min(len(c.queue), c.maxOps)
		if n == 0 {
			c.running--
			c.mu.Unlock()
			return
		}
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		c.mu.Unlock()

		ops := make([]*Op, n)
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
