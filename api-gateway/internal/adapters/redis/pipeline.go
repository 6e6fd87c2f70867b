package redis

import (
	"context"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// maxPipeline bounds the scripts sent in one pipeline.
const maxPipeline = 256

// pipeline runs the gateway's scripts (a rate limit and claim, a stored answer, a released key) for
// concurrent requests in as few round trips as keep Redis busy: a script that finds fewer than concurrency
// round trips under way runs at once, alone, as it always did; scripts that come while they are all under
// way wait, and go together, as one pipeline, the moment one returns. Nothing waits on a timer. Each
// script is still its own atomic step in Redis, and each caller gets its own reply: only the syscalls and
// round trips are shared.
type pipeline struct {
	rdb         *goredis.Client
	concurrency int

	mu       sync.Mutex
	underWay int
	queue    []*scriptCall
}

// scriptCall is a script waiting for its reply.
type scriptCall struct {
	ctx     context.Context
	timeout time.Duration
	script  *goredis.Script
	keys    []string
	args    []any
	// sent is set (under the pipeline's lock) once the call left the queue.
	sent bool
	done chan struct{}
	cmd  *goredis.Cmd
}

func newPipeline(rdb *goredis.Client, concurrency int) *pipeline {
	return &pipeline{rdb: rdb, concurrency: max(1, concurrency)}
}

// run runs script with keys and args within timeout, or, while Redis is busy with others', in the next
// pipeline. Its reply is script.Run's.
func (p *pipeline) run(ctx context.Context, timeout time.Duration, script *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	p.mu.Lock()
	if p.underWay < p.concurrency {
		p.underWay++
		p.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, timeout)
		cmd := script.Run(rctx, p.rdb, keys, args...)
		cancel()
		p.next()
		return cmd
	}
	c := &scriptCall{ctx: ctx, timeout: timeout, script: script, keys: keys, args: args, done: make(chan struct{})}
	p.queue = append(p.queue, c)
	p.mu.Unlock()

	// Its turn comes when the round trip ahead of it returns, within that one's timeout, and its own
	// pipeline has its timeout: a slow Redis costs it at most twice its timeout. Its own timeout is not
	// spent waiting, which would fail a script for the others' sake (an answer not stored leaves its key
	// in flight until the claim expires).
	select {
	case <-c.done:
		return c.cmd
	case <-ctx.Done():
	}
	if p.withdraw(c) {
		cmd := goredis.NewCmd(ctx)
		cmd.SetErr(ctx.Err())
		return cmd
	}
	<-c.done
	return c.cmd
}

// withdraw takes c out of the queue if it is still there, and reports whether it was.
func (p *pipeline) withdraw(c *scriptCall) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.sent {
		return false
	}
	if i := slices.Index(p.queue, c); i >= 0 {
		p.queue = slices.Delete(p.queue, i, i+1)
	}
	c.sent = true
	return true
}

// next is called when a round trip returns: the scripts queued meanwhile go in the next pipeline, on the
// place it leaves, or the place is given back.
func (p *pipeline) next() {
	p.mu.Lock()
	if len(p.queue) == 0 {
		p.underWay--
		p.mu.Unlock()
		return
	}
	n := min(len(p.queue), maxPipeline)
	batch := make([]*scriptCall, n)
	copy(batch, p.queue)
	for _, c := range batch {
		c.sent = true
	}
	p.queue = slices.Delete(p.queue, 0, n)
	p.mu.Unlock()
	go p.exec(batch)
}

// exec sends batch as one pipeline and hands each call its reply.
func (p *pipeline) exec(batch []*scriptCall) {
	defer p.next()
	timeout := time.Duration(0)
	for _, c := range batch {
		timeout = max(timeout, c.timeout)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(batch[0].ctx), timeout)
	defer cancel()
	pipe := p.rdb.Pipeline()
	for _, c := range batch {
		c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command holds its own reply or error
	// Scripts Redis did not know (its cache lost to a restart or SCRIPT FLUSH) go again, whole, in one
	// more pipeline, which loads them again.
	var again goredis.Pipeliner
	for _, c := range batch {
		if goredis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			if again == nil {
				again = p.rdb.Pipeline()
			}
			c.cmd = c.script.Eval(ctx, again, c.keys, c.args...)
		}
	}
	if again != nil {
		_, _ = again.Exec(ctx)
	}
	for _, c := range batch {
		close(c.done)
	}
}
