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
	Endpoint  uuid.UUID
	EventID   uuid.UUID
	Resource  string
	Type      string
	Body      []byte
	Attempts  int // made so far
	CreatedAt time.Time
}

// Key is a resource at an endpoint: what has at most one delivery out at a time.
type Key struct {
	Endpoint uuid.UUID
	Resource string
}

// Outcome is what became of an attempt.
type Outcome struct {
	DeliveryID int64
	Endpoint   uuid.UUID // the delivery's endpoint and resource: with its id, the key of its pending row
	Resource   string
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

// Health is what a record tells of an endpoint: some attempt succeeded (it is failing no more), or every
// one failed (it is failing since now, if it was not already; and disabled with Reason when it has been
// failing since before DisableBefore).
type Health struct {
	Endpoint      uuid.UUID
	Succeeded     bool
	DisableBefore time.Time
	Reason        string
}

// Queue is where deliveries wait (adapters/postgres).
type Queue interface {
	// Claim returns up to limit deliveries due now, oldest first, across the enabled endpoints, at most
	// perEndpoint of any one, each the earliest pending delivery of its resource at its endpoint (so a
	// resource's deliveries go one after the other, in log order); it leaves out the endpoints in skip and
	// the resources in busy (those with a delivery out). It returns the endpoints of the deliveries as they
	// are now.
	Claim(ctx context.Context, limit, perEndpoint int, skip []uuid.UUID, busy []Key) ([]Endpoint, []Pending, error)
	// Record stores the attempts' outcomes and the endpoints' health, in one transaction.
	Record(ctx context.Context, outcomes []Outcome, health []Health) error
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
	ClaimBatch   int           // deliveries claimed per round trip (and at most this many of one endpoint)
	Poll         time.Duration // how often the queue is looked at when nothing wakes the sender
}

// DefaultSenderConfig is the default schedule: 5 s, 10 s, 20 s, ... up to hourly, for 3 days.
var DefaultSenderConfig = SenderConfig{
	RetryBase: 5 * time.Second, RetryMax: time.Hour, MaxAge: 72 * time.Hour, DisableAfter: 72 * time.Hour,
	Workers: 64, Concurrency: 4, ClaimBatch: 500, Poll: 250 * time.Millisecond,
}

// Sender sends the queued deliveries. One loop (the pump) claims the due deliveries of every endpoint in
// one statement, sends them concurrently (each endpoint at most Concurrency at a time, at most Workers
// endpoints at once), and records the outcomes of many attempts, of any endpoints, in one statement. It runs
// while there is work, and is started again by the periodic round or a wake-up.
type Sender struct {
	cfg       SenderConfig
	queue     Queue
	transport Transport
	log       *slog.Logger
	metrics   senderMetrics

	mu      sync.Mutex
	running bool          // the pump is running
	kick    chan struct{} // tells the running pump that work may be due
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
	cfg.Workers, cfg.Concurrency, cfg.ClaimBatch = max(1, cfg.Workers), max(1, cfg.Concurrency), max(1, cfg.ClaimBatch)
	return &Sender{cfg: cfg, queue: queue, transport: transport, log: log, metrics: m,
		kick: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
}

// Every is the periodic job's interval.
func (s *Sender) Every() time.Duration { return s.cfg.Poll }

// Round is the periodic job (runner.Periodic, one replica at a time): retries come due with time, so it
// has the pump look at the queue.
func (s *Sender) Round(ctx context.Context) {
	s.leaseUntil.Store(time.Now().Add(3 * s.cfg.Poll).UnixNano())
	s.dispatch(ctx)
}

// Wake asks for a look at the queue now (deliveries were queued); it never blocks.
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

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
		}
	}
}

// dispatch starts the pump, or tells the running one to claim again.
func (s *Sender) dispatch(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		select {
		case s.kick <- struct{}{}:
		default:
		}
		return
	}
	s.running = true
	go s.pump(ctx)
}

// claimGap is the shortest time between two claims, unless the last one was full: under load every batch
// of the log wakes the sender, and a claim (and a record) for each would cost more than the sends. A claim's
// cost is mostly its walk of the queue's index (webhook_pending's key), whose entries for delivered rows
// stay until vacuum (longer while any transaction holds the horizon back), so fewer, larger claims cost
// less (measured with the queue's earlier index, on the delivery rows): at 20 ms and 100 a claim
// spread-16 with one endpoint a client cost 3.9-4.3 ms a payment against 2.55 without; at 100 ms and 500,
// 3.27 (docs/benchmarks.md). A delivery waits at most this much longer for its first attempt.
const claimGap = 100 * time.Millisecond

// endpointState is what the pump knows of an endpoint it has deliveries of.
type endpointState struct {
	ep       Endpoint
	secrets  []string
	queue    []Pending // claimed, not started
	inflight int
	// since the last record: how many attempts finished, whether any succeeded, the last failure
	done      int
	succeeded bool
	lastErr   string
}

type result struct {
	o   Outcome
	key Key
}

// pump sends the due deliveries until none is due and nothing is out. A resource's deliveries stay in log
// order: a claim returns only the earliest pending delivery of each resource at each endpoint, and leaves
// out the resources whose delivery is in flight or not yet recorded, so a resource never has two
// deliveries out at once. A receiver that hangs holds one of its endpoint's slots until the timeout; its
// endpoint's other deliveries, and every other endpoint's, go on: outcomes are recorded and claims made
// while it hangs.
func (s *Sender) pump(ctx context.Context) {
	results := make(chan result, s.cfg.Workers*s.cfg.Concurrency)
	var (
		eps       = map[uuid.UUID]*endpointState{}
		busy      = map[Key]bool{} // resources claimed and not yet recorded
		done      []result         // finished, not recorded
		firstDone time.Time        // when the oldest of done finished
		inflight  int
		active    int    // endpoints with attempts out
		claim     = true // work may be due that is not claimed
		lastClaim time.Time
		stopped   bool // running was reset on the way out
		timer     = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	finished := func(r result) {
		inflight--
		st := eps[r.key.Endpoint]
		st.inflight--
		if st.inflight == 0 {
			active--
		}
		if len(done) == 0 {
			firstDone = time.Now()
		}
		done = append(done, r)
		st.done++
		if r.o.State == "SUCCEEDED" {
			st.succeeded = true
		} else {
			st.lastErr = describe(r.o)
		}
	}
	// record stores what finished; its resources' next deliveries become claimable.
	record := func() bool {
		if len(done) == 0 {
			return true
		}
		outcomes := make([]Outcome, len(done))
		for i, r := range done {
			outcomes[i] = r.o
		}
		var health []Health
		now := time.Now()
		for _, st := range eps {
			switch {
			case st.done == 0:
			case st.succeeded && st.ep.FailingSince != nil: // it recovered
				health = append(health, Health{Endpoint: st.ep.ID, Succeeded: true})
			case !st.succeeded:
				since := now
				if st.ep.FailingSince != nil {
					since = *st.ep.FailingSince
				}
				health = append(health, Health{Endpoint: st.ep.ID, DisableBefore: now.Add(-s.cfg.DisableAfter),
					Reason: "disabled after every delivery failed since " + since.UTC().Format(time.RFC3339) + "; last: " + st.lastErr})
			}
		}
		// Recorded even when ctx has ended (a shutdown): what was sent should not be sent again.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := s.queue.Record(rctx, outcomes, health)
		cancel()
		if err != nil {
			s.log.Warn("webhooks: cannot record attempts (they will be repeated)", "err", err)
			return false
		}
		for _, r := range done {
			delete(busy, r.key)
		}
		done = done[:0]
		for id, st := range eps {
			if st.done > 0 {
				if st.succeeded {
					st.ep.FailingSince = nil
				} else if st.ep.FailingSince == nil {
					st.ep.FailingSince = &now
				}
			}
			st.done, st.succeeded, st.lastErr = 0, false, ""
			if st.inflight == 0 && len(st.queue) == 0 {
				delete(eps, id)
			}
		}
		return true
	}
	defer func() {
		for inflight > 0 { // a shutdown or a failure: wait for the attempts out (each has its timeout) and record them
			finished(<-results)
		}
		record()
		s.metrics.workers.Set(0)
		if !stopped {
			s.mu.Lock()
			s.running = false
			s.mu.Unlock()
		}
	}()
	for {
		// Start what the slots allow.
		for _, st := range eps {
			for st.inflight < s.cfg.Concurrency && len(st.queue) > 0 && ctx.Err() == nil {
				if st.inflight == 0 {
					if active >= s.cfg.Workers {
						break
					}
					active++
				}
				p := st.queue[0]
				st.queue = st.queue[1:]
				st.inflight++
				inflight++
				go func(ep Endpoint, secrets []string) {
					results <- result{s.attempt(ctx, ep, secrets, p), Key{p.Endpoint, p.Resource}}
				}(st.ep, st.secrets)
			}
		}
		s.metrics.workers.Set(float64(active))
		if ctx.Err() != nil {
			return
		}
		// Record when nothing is out, or enough has finished, or the oldest finished a while ago.
		if len(done) > 0 && (inflight == 0 || len(done) >= s.cfg.ClaimBatch/2 || time.Since(firstDone) >= claimGap) {
			if !record() {
				return
			}
			claim = true // the recorded resources' next deliveries may go
		}
		// Claim when something may be due and the last claim is not too recent. The endpoints with claimed
		// deliveries waiting for a slot are left out: they have enough to do.
		if claim && len(done) == 0 && time.Since(lastClaim) >= claimGap {
			skip := make([]uuid.UUID, 0, len(eps))
			for id, st := range eps {
				if len(st.queue) > 0 {
					skip = append(skip, id)
				}
			}
			keys := make([]Key, 0, len(busy))
			for k := range busy {
				keys = append(keys, k)
			}
			lastClaim = time.Now()
			endpoints, batch, err := s.queue.Claim(ctx, s.cfg.ClaimBatch, s.cfg.ClaimBatch, skip, keys)
			if err == nil {
				err = s.open(ctx, batch)
			}
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("webhooks: cannot claim deliveries", "err", err)
				}
				return
			}
			// Each endpoint's secrets as they are now (a rotation), its URL and failure run; the attempts out
			// keep what they were started with.
			for _, ep := range endpoints {
				st := eps[ep.ID]
				if st == nil {
					st = &endpointState{}
					eps[ep.ID] = st
				}
				st.ep, st.secrets = ep, s.secrets(ep)
			}
			for _, p := range batch {
				busy[Key{p.Endpoint, p.Resource}] = true
				eps[p.Endpoint].queue = append(eps[p.Endpoint].queue, p)
			}
			// A full claim may have left some due; otherwise more is due when a wake-up, a round or a
			// record says so.
			claim = len(batch) >= s.cfg.ClaimBatch
			if len(batch) > 0 {
				continue
			}
		}
		if inflight == 0 && len(done) == 0 && !claim {
			// Nothing due, nothing out: done until the next wake-up or round (unless one came just now).
			s.mu.Lock()
			select {
			case <-s.kick:
				s.mu.Unlock()
				claim = true
				continue
			default:
			}
			s.running, stopped = false, true
			s.mu.Unlock()
			return
		}
		// Wait for an attempt, a wake-up, or the time to record or claim.
		var tick <-chan time.Time
		switch {
		case len(done) > 0:
			timer.Reset(max(0, claimGap-time.Since(firstDone)))
			tick = timer.C
		case claim:
			timer.Reset(max(0, claimGap-time.Since(lastClaim)))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
		case r := <-results:
			finished(r)
		case <-s.kick:
			claim = true
		case <-tick:
		}
		if tick != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// open opens the sealed fields of the claimed bodies.
func (s *Sender) open(ctx context.Context, batch []Pending) error {
	if len(batch) == 0 {
		return nil
	}
	bodies := make([]*json.RawMessage, len(batch))
	for i := range batch {
		raw := json.RawMessage(batch[i].Body)
		bodies[i] = &raw
	}
	if err := s.queue.Open(ctx, bodies); err != nil {
		return err
	}
	for i := range batch {
		batch[i].Body = *bodies[i]
	}
	return nil
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
	o := Outcome{DeliveryID: p.ID, Endpoint: p.Endpoint, Resource: p.Resource, Attempt: n, At: start, StatusCode: resp.Status,
		Latency: took, Excerpt: resp.Excerpt}
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
