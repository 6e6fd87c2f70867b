package downstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upi/api-gateway/internal/app"
	"upi/shared/contract"
	"upi/shared/platform/observability"
)

// maxBatchResponseBytes bounds a batch's answer: MaxBatchItems answers of a command, each well under 64 KiB.
const maxBatchResponseBytes = 16 << 20

// Batcher sends the commands for one service (app.Service) in as few requests as keep it busy: a command
// that finds fewer than Concurrency requests under way goes at once, alone, as it always did; commands
// that arrive while they are all under way wait, and go together, as one batch (POST
// contract.PathCommandBatch), as soon as one of them returns. Nothing waits on a timer: a lone command
// never waits at all, and under load a batch holds what arrived during one round trip. The service answers
// each item as its own request would have been answered, and each caller gets its own answer.
type Batcher struct {
	single, batch *Endpoint
	concurrency   int
	size          prometheus.Observer

	mu       sync.Mutex
	underWay int        // requests under way to the service
	queue    []*pending // commands waiting for one of them to return
}

// pending is a command waiting for its answer.
type pending struct {
	ctx  context.Context
	call app.Call
	// deadline is the command's: its call's timeout from when it was queued.
	deadline time.Time
	// sent is set (under the Batcher's lock) once the command left the queue.
	sent bool
	done chan struct{}
	resp *app.Response
	err  error
}

// itemOverhead is what an item costs in a batch's body beside its body: the JSON of its fields.
const itemOverhead = 512

// NewBatcher returns a Batcher for the service of single (an endpoint for POST), with at most concurrency
// requests under way to it, and registers its metric.
func (c *Client) NewBatcher(single *Endpoint, concurrency int, reg prometheus.Registerer) *Batcher {
	size := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gateway_command_batch_size",
		Help:    "Commands per request to the command service: 1 for a command sent alone, more for a batch.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	reg.MustRegister(size)
	// Its calls are timed apart from single commands': method "POST batch".
	batch := c.endpoint(single.svc, http.MethodPost, "POST batch")
	batch.maxResponse = maxBatchResponseBytes
	return &Batcher{single: single, batch: batch, concurrency: max(1, concurrency), size: size}
}

// Call sends c alone if the service has fewer than Concurrency requests under way, and otherwise queues
// it for the next batch. Its answer and errors are those of Endpoint.Call.
func (b *Batcher) Call(ctx context.Context, c app.Call) (*app.Response, error) {
	if c.ContentType != "" || c.Key == "" {
		// Only JSON commands travel in batches.
		return b.single.Call(ctx, c)
	}
	b.mu.Lock()
	if b.underWay < b.concurrency {
		b.underWay++
		b.mu.Unlock()
		b.size.Observe(1)
		resp, err := b.single.Call(ctx, c)
		b.next()
		return resp, err
	}
	p := &pending{ctx: ctx, call: c, deadline: time.Now().Add(c.Timeout), done: make(chan struct{})}
	b.queue = append(b.queue, p)
	b.mu.Unlock()

	timer := time.NewTimer(c.Timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.resp, p.err
	case <-timer.C:
		if b.withdraw(p) {
			b.single.timeout.duration.Observe(c.Timeout.Seconds())
			b.single.timeout.errors.Inc()
			return nil, fmt.Errorf("%w: %s waited %s for a batch to %s", app.ErrTimeout, c.Path, c.Timeout, b.single.svc.Name)
		}
	case <-ctx.Done():
		if b.withdraw(p) {
			return nil, ctx.Err()
		}
	}
	// It was sent meanwhile: its answer comes within the batch's deadline, the latest of its commands'.
	<-p.done
	return p.resp, p.err
}

// withdraw takes p out of the queue if it is still there, and reports whether it was.
func (b *Batcher) withdraw(p *pending) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.sent {
		return false
	}
	if i := slices.Index(b.queue, p); i >= 0 {
		b.queue = slices.Delete(b.queue, i, i+1)
	}
	p.sent = true
	return true
}

// next is called when a request returns: the commands queued meanwhile go in the next batch, on the place
// it leaves, or the place is given back.
func (b *Batcher) next() {
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.underWay--
		b.mu.Unlock()
		return
	}
	batch := b.take()
	b.mu.Unlock()
	go b.send(batch)
}

// take removes the next batch from the queue, bounded in items and bytes; the caller holds the lock.
func (b *Batcher) take() []*pending {
	n, size := 0, 0
	for n < len(b.queue) && n < contract.MaxBatchItems {
		s := len(b.queue[n].call.Body)*4/3 + itemOverhead
		if n > 0 && size+s > contract.MaxBatchBytes {
			break
		}
		size += s
		n++
	}
	batch := make([]*pending, n)
	copy(batch, b.queue)
	for _, p := range batch {
		p.sent = true
	}
	b.queue = slices.Delete(b.queue, 0, n)
	if len(b.queue) == 0 {
		b.queue = b.queue[:0:0] // let a long queue's array go
	}
	return batch
}

// send sends a batch, answers each of its commands, and hands its place on.
func (b *Batcher) send(batch []*pending) {
	defer b.next()
	b.size.Observe(float64(len(batch)))
	if len(batch) == 1 {
		p := batch[0]
		c := p.call
		c.Timeout = max(time.Until(p.deadline), time.Millisecond)
		p.resp, p.err = b.single.Call(p.ctx, c)
		close(p.done)
		return
	}
	results, err := b.call(batch)
	for i, p := range batch {
		if err != nil {
			p.err = err
		} else {
			p.resp = results[i]
		}
		close(p.done)
	}
}

// call sends batch as one request and returns each command's answer, in order. A failure of the request
// (no answer, a deadline) is each command's.
func (b *Batcher) call(batch []*pending) ([]*app.Response, error) {
	req := contract.BatchRequest{Items: make([]contract.BatchItem, len(batch))}
	// The batch's deadline is the latest of its commands'.
	var deadline time.Time
	for i, p := range batch {
		c := p.call
		req.Items[i] = contract.BatchItem{Method: http.MethodPost, Path: c.Path, Client: c.Client, Operator: c.Operator,
			IdempotencyKey: c.Key, RequestID: c.RequestID, TraceParent: observability.TraceParent(p.ctx), Body: c.Body}
		if p.deadline.After(deadline) {
			deadline = p.deadline
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode a batch for %s: %w", b.single.svc.Name, err)
	}
	first := batch[0]
	resp, err := b.batch.Call(context.WithoutCancel(first.ctx), app.Call{Path: contract.PathCommandBatch,
		RequestID: first.call.RequestID, Body: body, ContentType: "application/json", Timeout: max(time.Until(deadline), time.Millisecond)})
	switch {
	case err != nil:
		return nil, err
	case resp.Status == http.StatusNotFound || resp.Status == http.StatusMethodNotAllowed:
		// A service that does not know the route (an older version, during a rolling upgrade).
		return b.oneByOne(batch), nil
	case resp.Status != http.StatusOK:
		// The batch as a whole was refused (its token, its size): the answer is each command's, as it
		// would have been for the command sent alone.
		out := make([]*app.Response, len(batch))
		for i := range out {
			out[i] = resp
		}
		return out, nil
	}
	var answer contract.BatchResponse
	if err := json.Unmarshal(resp.Body, &answer); err != nil || len(answer.Results) != len(batch) {
		if err == nil {
			err = fmt.Errorf("%d results for %d commands", len(answer.Results), len(batch))
		}
		return nil, fmt.Errorf("%w: %s batch: %w", app.ErrUnavailable, b.single.svc.Name, err)
	}
	out := make([]*app.Response, len(batch))
	for i, r := range answer.Results {
		h := make(http.Header, len(r.Header))
		for name, v := range r.Header {
			h[http.CanonicalHeaderKey(name)] = []string{v}
		}
		out[i] = &app.Response{Status: r.Status, Header: h, Body: r.Body}
	}
	return out, nil
}

// oneByOne sends each command of batch alone, at once: the answer to a batch the service does not know.
func (b *Batcher) oneByOne(batch []*pending) []*app.Response {
	out := make([]*app.Response, len(batch))
	var wg sync.WaitGroup
	for i, p := range batch {
		wg.Go(func() {
			out[i], p.err = b.single.Call(p.ctx, p.call)
		})
	}
	wg.Wait()
	return out
}
