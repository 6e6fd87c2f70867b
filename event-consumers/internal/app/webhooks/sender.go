package webhooks

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"upi/shared/contract/webhook"
)

// Endpoint is an endpoint with work due, as the sender needs it.
type Endpoint struct {
	ID  uuid.UUID
	URL string
	// Secrets sign each attempt: the current one, and the previous one during a rotation's overlap.
	SecretVersion         int
	PreviousSecretVersion int // 0: none
	PreviousUntil         time.Time
	FailingSince          *time.Time
}

// Pending is a delivery due to be attempted.
type Pending struct {
	ID        int64
	EventID   uuid.UUID
	Resource  string
	Type      string
	Body      []byte
	Attempts  int // made so far
	CreatedAt time.Time
}

// Outcome is what became of an attempt.
type Outcome struct {
	DeliveryID int64
	Attempt    int
	At         time.Time
	StatusCode int    // 0: no response
	Error      string // why there was no response, or none
	Latency    time.Duration
	Excerpt    string
	// State is the delivery's state after it: SUCCEEDED, FAILED (given up) or PENDING, due at Next.
	State string
	Next  time.Time
}

// Queue is where deliveries wait (adapters/postgres).
type Queue interface {
	// Due lists the enabled endpoints with a delivery due.
	Due(ctx context.Context, limit int) ([]Endpoint, error)
	// Claim returns the endpoint as it is now, and up to limit of its deliveries due now, oldest first,
	// each the earliest pending one of its resource (so a resource's deliveries go one after the other, in
	// log order), leaving out the resources named in exclude (those with a delivery out). An endpoint no
	// longer enabled has none.
	Claim(ctx context.Context, endpoint uuid.UUID, limit int, exclude []string) (Endpoint, []Pending, error)
	// Record stores the attempts' outcomes and the endpoint's health: succeeded (any attempt did) or
	// failing; an endpoint failing since before disableBefore is disabled with reason.
	Record(ctx context.Context, endpoint uuid.UUID, outcomes []Outcome, succeeded, failed bool, disableBefore time.Time, reason string) error
	// Open opens, in place, the sealed personal fields of the bodies (a note, a reason), or makes them
	// read "[erased]" when their person was erased: the queue keeps them sealed, as the log does.
	Open(ctx context.Context, bodies []*json.RawMessage) error
}

// Request is one attempt to send.
type Request struct {
	URL     string
	Body    []byte
	Headers map[string]string
}

// Response is what the receiver answered; Status 0 with Err when it did not.
type Response struct {
	Status     int
	RetryAfter time.Duration // from Retry-After, 0 when absent
	Excerpt    string
	Err        error
}

// Transport sends one attempt (adapters/webhookhttp): with a timeout, reading a bounded part of the answer,
// and refusing targets the settings do not allow.
type Transport interface {
	Send(ctx context.Context, r Request) Response
}

// SenderConfig are the sender's settings (WEBHOOK_*).
type SenderConfig struct {
	SecretKey    string        // WEBHOOK_SECRET_KEY
	RetryBase    time.Duration // the first retry's delay; each next one doubles it
	RetryMax     time.Duration // the longest delay between two attempts
	MaxAge       time.Duration // a delivery still failing this long after its event is given up
	DisableAfter time.Duration // an endpoint whose every attempt has failed for this long is disabled
	Workers      int           // endpoints served at once, at most
	Concurrency  int           // attempts in flight per endpoint, at most
	ClaimBatch   int           // deliveries claimed per round trip
	Poll         time.Duration // how often the queue is looked at when nothing wakes the sender
}

// DefaultSenderConfig is the default schedule: 5 s, 10 s, 20 s, ... up to hourly, for 3 days.
var DefaultSenderConfig = SenderConfig{
	RetryBase: 5 * time.Second, RetryMax: time.Hour, MaxAge: 72 * time.Hour, DisableAfter: 72 * time.Hour,
	Workers: 64, Concurrency: 4, ClaimBatch: 100, Poll: 250 * time.Millisecond,
}

// Sender sends the queued deliveries.
type Sender struct {
	cfg       SenderConfig
	queue     Queue
	transport Transport
	log       *slog.Logger
	metrics   senderMetrics

	mu   sync.Mutex
	busy map[uuid.UUID]bool // endpoints with a worker
	// leaseUntil is until when this process is the active sender (the periodic job's lock was held at its
	// last round); wake-ups between rounds dispatch only while it holds.
	leaseUntil atomic.Int64
	wake       chan struct{}
}

type senderMetrics struct {
	attempts *prometheus.CounterVec
	latency  prometheus.Histogram
	workers  prometheus.Gauge
}

// NewSender returns the sender.
func NewSender(cfg SenderConfig, queue Queue, transport Transport, log *slog.Logger, reg prometheus.Registerer) *Sender {
	m := senderMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "webhook_attempts_total",
			Help: "Webhook delivery attempts, by outcome (success, failure, error: no response)."}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "webhook_attempt_seconds",
			Help: "Time of a webhook delivery attempt.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}),
		workers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "webhook_endpoint_workers",
			Help: "Endpoints being sent to now."}),
	}
	reg.MustRegister(m.attempts, m.latency, m.workers)
	return &Sender{cfg: cfg, queue: queue, transport: transport, log: log, metrics: m,
		busy: map[uuid.UUID]bool{}, wake: make(chan struct{}, 1)}
}

// Every is the periodic job's interval.
func (s *Sender) Every() time.Duration { return s.cfg.Poll }

// Round is the periodic job (runner.Periodic, one replica at a time): it starts a worker for each endpoint
// with work due that has none.
func (s *Sender) Round(ctx context.Context) {
	s.leaseUntil.Store(time.Now().Add(3 * s.cfg.Poll).UnixNano())
	s.dispatch(ctx)
}

// Wake asks for a dispatch now (deliveries were queued); it never blocks.
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// wakeGap is the shortest time between two dispatches made by wake-ups.
const wakeGap = 20 * time.Millisecond

// Run serves the wake-ups until ctx ends: between the periodic rounds, queued deliveries start at once.
func (s *Sender) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			if time.Now().UnixNano() < s.leaseUntil.Load() {
				s.dispatch(ctx)
			}
			// At most one wake-up dispatch per wakeGap: under load every batch of the log wakes the sender,
			// and an endpoint's worker, once started, keeps claiming until its queue is empty anyway.
			select {
			case <-ctx.Done():
				return
			case <-time.After(wakeGap):
			}
		}
	}
}

func (s *Sender) dispatch(ctx context.Context) {
	eps, err := s.queue.Due(ctx, 1000)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("webhooks: cannot read the queue", "err", err)
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ep := range eps {
		if s.busy[ep.ID] || len(s.busy) >= s.cfg.Workers {
			continue
		}
		s.busy[ep.ID] = true
		s.metrics.workers.Inc()
		go s.work(ctx, ep)
	}
}

// work sends endpoint ep's due deliveries until none is due, at most Concurrency at a time, each attempt
// bounded by the transport's timeout. A resource's deliveries stay in log order: a claim returns only the
// earliest pending delivery of each resource, and leaves out the resources whose delivery is in flight or
// not yet recorded, so a resource never has two deliveries out at once. A receiver that hangs holds one
// slot until the timeout; the others go on.
func (s *Sender) work(ctx context.Context, ep Endpoint) {
	defer func() {
		s.mu.Lock()
		delete(s.busy, ep.ID)
		s.mu.Unlock()
		s.metrics.workers.Dec()
	}()
	secrets := s.secrets(ep)
	type result struct {
		o        Outcome
		resource string
	}
	conc := max(1, s.cfg.Concurrency)
	results := make(chan result, conc)
	var (
		queue    []Pending           // claimed, not started
		busy     = map[string]bool{} // resources in flight or awaiting their record
		done     []result            // finished, not recorded
		inflight int
		drained  bool // the last claim found nothing more
	)
	// flush records what finished; its resources' next deliveries become claimable.
	flush := func() bool {
		if len(done) == 0 {
			return true
		}
		outcomes := make([]Outcome, len(done))
		var succeeded, failed bool
		var lastErr string
		for i, r := range done {
			outcomes[i] = r.o
			if r.o.State == "SUCCEEDED" {
				succeeded = true
			} else {
				failed, lastErr = true, describe(r.o)
			}
		}
		reason := ""
		if failed {
			since := time.Now()
			if ep.FailingSince != nil {
				since = *ep.FailingSince
			}
			reason = "disabled after every delivery failed since " + since.UTC().Format(time.RFC3339) + "; last: " + lastErr
		}
		// Recorded even when ctx has ended (a shutdown): what was sent should not be sent again.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := s.queue.Record(rctx, ep.ID, outcomes, succeeded, failed && !succeeded, time.Now().Add(-s.cfg.DisableAfter), reason)
		cancel()
		if err != nil {
			s.log.Warn("webhooks: cannot record attempts (they will be repeated)", "endpoint", ep.ID, "err", err)
			return false
		}
		for _, r := range done {
			delete(busy, r.resource)
		}
		done = done[:0]
		if succeeded {
			ep.FailingSince = nil
		} else if ep.FailingSince == nil {
			now := time.Now()
			ep.FailingSince = &now
		}
		return true
	}
	defer func() {
		for inflight > 0 { // a shutdown: wait for the attempts out (each has its timeout) and record them
			done = append(done, <-results)
			inflight--
		}
		flush()
	}()
	for {
		for inflight < conc && len(queue) > 0 && ctx.Err() == nil {
			p := queue[0]
			queue = queue[1:]
			inflight++
			go func(ep Endpoint, secrets []string) { results <- result{s.attempt(ctx, ep, secrets, p), p.Resource} }(ep, secrets)
		}
		if ctx.Err() != nil {
			return
		}
		if len(queue) == 0 && !drained {
			if !flush() {
				return
			}
			exclude := make([]string, 0, len(busy))
			for r := range busy {
				exclude = append(exclude, r)
			}
			now, batch, err := s.queue.Claim(ctx, ep.ID, s.cfg.ClaimBatch, exclude)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("webhooks: cannot claim deliveries", "endpoint", ep.ID, "err", err)
				}
				return
			}
			if len(batch) > 0 {
				bodies := make([]*json.RawMessage, len(batch))
				for i := range batch {
					raw := json.RawMessage(batch[i].Body)
					bodies[i] = &raw
				}
				if err := s.queue.Open(ctx, bodies); err != nil {
					if ctx.Err() == nil {
						s.log.Warn("webhooks: cannot open sealed fields", "endpoint", ep.ID, "err", err)
					}
					return
				}
				for i := range batch {
					batch[i].Body = *bodies[i]
				}
				// Its secrets as they are now (a rotation), its URL and failure run (recorded at every flush);
				// the attempts out keep what they were started with.
				ep = now
				secrets = s.secrets(ep)
			}
			for _, p := range batch {
				busy[p.Resource] = true
			}
			queue, drained = batch, len(batch) == 0
			if len(queue) > 0 {
				continue
			}
		}
		if inflight == 0 {
			return // nothing claimed, nothing out: done until the next round
		}
		r := <-results
		inflight--
		done = append(done, r)
		drained = false // what it finished may let the next delivery of its resource go
		if len(done) >= s.cfg.ClaimBatch/2 || (len(queue) > 0 && inflight < conc && len(done) >= conc) {
			if !flush() {
				return
			}
		}
	}
}

// secrets are the secrets that sign ep's attempts: the current one, and the previous one during a
// rotation's overlap.
func (s *Sender) secrets(ep Endpoint) []string {
	out := []string{webhook.Secret(s.cfg.SecretKey, ep.ID.String(), ep.SecretVersion)}
	if ep.PreviousSecretVersion > 0 && time.Now().Before(ep.PreviousUntil) {
		out = append(out, webhook.Secret(s.cfg.SecretKey, ep.ID.String(), ep.PreviousSecretVersion))
	}
	return out
}

func describe(o Outcome) string {
	if o.StatusCode == 0 {
		return o.Error
	}
	return "HTTP " + strconv.Itoa(o.StatusCode)
}

// attempt sends p once and decides what follows.
func (s *Sender) attempt(ctx context.Context, ep Endpoint, secrets []string, p Pending) Outcome {
	n := p.Attempts + 1
	start := time.Now()
	resp := s.transport.Send(ctx, Request{URL: ep.URL, Body: p.Body, Headers: map[string]string{
		webhook.HeaderEventID:   p.EventID.String(),
		webhook.HeaderEventType: p.Type,
		webhook.HeaderSignature: webhook.SignatureHeader(start.Unix(), p.Body, secrets...),
		webhook.HeaderAttempt:   strconv.Itoa(n),
	}})
	took := time.Since(start)
	s.metrics.latency.Observe(took.Seconds())
	o := Outcome{DeliveryID: p.ID, Attempt: n, At: start, StatusCode: resp.Status, Latency: took, Excerpt: resp.Excerpt}
	switch {
	case resp.Status >= 200 && resp.Status < 300:
		s.metrics.attempts.WithLabelValues("success").Inc()
		o.State = "SUCCEEDED"
		return o
	case resp.Err != nil:
		s.metrics.attempts.WithLabelValues("error").Inc()
		o.Error = resp.Err.Error()
	default:
		s.metrics.attempts.WithLabelValues("failure").Inc()
	}
	next := start.Add(s.Backoff(n, resp.RetryAfter))
	if next.Sub(p.CreatedAt) > s.cfg.MaxAge {
		o.State = "FAILED"
		return o
	}
	o.State, o.Next = "PENDING", next
	return o
}

// Backoff is the delay after the n-th failed attempt: RetryBase doubled each time up to RetryMax, with
// jitter (a random half of it), and never less than the receiver's Retry-After (capped at RetryMax).
func (s *Sender) Backoff(n int, retryAfter time.Duration) time.Duration {
	d := s.cfg.RetryBase
	for i := 1; i < n && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryMax)
	d = d/2 + rand.N(d/2+1)
	if retryAfter > d {
		d = min(retryAfter, s.cfg.RetryMax)
	}
	return d
}
