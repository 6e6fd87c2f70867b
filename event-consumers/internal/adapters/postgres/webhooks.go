package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/event-consumers/internal/app/webhooks"
	"upi/shared/platform/pii"
)

// Webhooks is the webhooks' queue (webhooks.Store and webhooks.Queue): deliveries, their attempts, and the
// endpoints' health (docs/webhooks.md). Its statements take ids as [][16]byte, which pgx encodes as binary
// uuid[] directly; a []uuid.UUID goes through each id's Valuer, as text, and a reflective plan.
type Webhooks struct{ pool *pgxpool.Pool }

// NewWebhooks returns the queue.
func NewWebhooks(pool *pgxpool.Pool) *Webhooks { return &Webhooks{pool: pool} }

// Queue implements webhooks.Store: one statement for the whole batch, joining the deliveries to their
// clients' endpoints, so that nothing is cached that could go stale, and inserting each new delivery's
// pending row (the sender's queue) with it. The rows are inserted in the order given (log order), so
// delivery ids follow the log; a delivery already queued is left alone, and so gets no second pending
// row. It returns how many deliveries it inserted.
func (w *Webhooks) Queue(ctx context.Context, ds []webhooks.Delivery) (int, error) {
	n := len(ds)
	eventIDs, types, resources, bodies, clients := make([][16]byte, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	at := make([]time.Time, n)
	for i, d := range ds {
		eventIDs[i], types[i], resources[i], bodies[i], clients[i], at[i] = d.EventID, d.Type, d.ResourceID, string(d.Body), d.Client, d.CreatedAt
	}
	tag, err := w.pool.Exec(ctx, `
		with d as (
			insert into webhook_deliveries (endpoint_id, event_id, event_type, resource_id, body, event_created_at)
			select e.endpoint_id, x.event_id, x.event_type, x.resource_id, x.body, x.created_at
			from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
			     with ordinality as x(event_id, event_type, resource_id, body, created_at, client_id, n)
			join webhook_endpoints e on e.client_id = x.client_id and e.status = 'ENABLED' and e.created_at <= x.created_at
			 and (cardinality(e.event_types) = 0 or x.event_type = any(e.event_types) or '*' = any(e.event_types)
			      or split_part(x.event_type, '.', 1) || '.*' = any(e.event_types))
			order by x.n, e.endpoint_id
			on conflict (endpoint_id, event_id) where not redelivery do nothing
			returning endpoint_id, resource_id, delivery_id)
		insert into webhook_pending (endpoint_id, resource_id, delivery_id)
		select endpoint_id, resource_id, delivery_id from d`,
		eventIDs, types, resources, bodies, at, clients)
	if err != nil {
		return 0, fmt.Errorf("queue webhook deliveries: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Claim implements webhooks.Queue, in one statement: for each enabled endpoint (each read as it is now),
// its deliveries due in delivery order, each the earliest pending one of its resource. The plan must not
// depend on statistics, which a fresh or fast-growing queue lacks (every benchmark's). Any form of "no
// earlier pending delivery of this resource" tested per delivery left the planner free to walk an index by
// endpoint alone and filter by resource, reading the endpoint's whole pending list for each delivery
// claimed: a cost quadratic in the backlog (seen: 4.5 s for a claim of 500 with 8,593 pending). So the
// earliest pending delivery of each resource is found at once, by one DISTINCT ON over the endpoint's
// rows of webhook_pending (narrow rows, in the order of its key: endpoint, resource, delivery), and only
// the ones claimed are read whole from webhook_deliveries: linear in the backlog whatever the plan.
//
// What is left is the walk itself: the queue's index keeps its delivered rows' entries until vacuum,
// longer while any transaction holds the horizon back (docs/webhooks.md, "Cost"). A plain index scan marks
// each entry whose row it finds dead, and later scans pass over it without reading the row; a bitmap scan
// marks nothing, so every claim would read the page of every row delivered since the last vacuum. On a
// fresh queue (no statistics) the planner picks the bitmap scan, so the claim's transaction turns it off.
func (w *Webhooks) Claim(ctx context.Context, limit, perEndpoint int, skip []uuid.UUID, busy []webhooks.Key) ([]webhooks.Endpoint, []webhooks.Pending, error) {
	busyEndpoints, busyResources := make([][16]byte, len(busy)), make([]string, len(busy))
	for i, k := range busy {
		busyEndpoints[i], busyResources[i] = k.Endpoint, k.Resource
	}
	skipped := make([][16]byte, len(skip))
	for i, id := range skip {
		skipped[i] = id
	}
	tx, err := w.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: claimBegin})
	if err != nil {
		return nil, nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	rows, err := tx.Query(ctx, `
		select e.endpoint_id, e.url, e.secret_version, coalesce(e.previous_secret_version, 0),
		       coalesce(e.previous_secret_expires_at, 'epoch'), e.failing_since,
		       d.delivery_id, d.event_id, d.resource_id, d.event_type, d.body, c.attempts, d.event_created_at
		from webhook_endpoints e
		cross join lateral (select array(select b.resource_id from unnest($4::uuid[], $5::text[]) as b(endpoint_id, resource_id)
		                                  where b.endpoint_id = e.endpoint_id) as busy) x
		cross join lateral (
			select f.delivery_id, f.attempts
			from (select distinct on (p.resource_id) p.delivery_id, p.resource_id, p.next_attempt_at, p.attempts
			      from webhook_pending p
			      where p.endpoint_id = e.endpoint_id
			      order by p.resource_id, p.delivery_id) f
			where f.next_attempt_at <= now() and f.resource_id <> all(x.busy)
			order by f.delivery_id
			limit $2) c
		join webhook_deliveries d on d.delivery_id = c.delivery_id
		where e.status = 'ENABLED' and e.endpoint_id <> all($3::uuid[])
		order by d.delivery_id
		limit $1`, limit, perEndpoint, skipped, busyEndpoints, busyResources)
	if err != nil {
		return nil, nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	var endpoints []webhooks.Endpoint
	seen := map[uuid.UUID]bool{}
	pending, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhooks.Pending, error) {
		var e webhooks.Endpoint
		var p webhooks.Pending
		var body string
		err := r.Scan(&e.ID, &e.URL, &e.SecretVersion, &e.PreviousSecretVersion, &e.PreviousUntil, &e.FailingSince,
			&p.ID, &p.EventID, &p.Resource, &p.Type, &body, &p.Attempts, &p.CreatedAt)
		p.Endpoint, p.Body = e.ID, []byte(body)
		if err == nil && !seen[e.ID] {
			seen[e.ID] = true
			endpoints = append(endpoints, e)
		}
		return p, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	return endpoints, pending, nil
}

// claimBegin opens the claim's transaction: read only, and without bitmap scans (see Claim).
const claimBegin = "begin read only; set local enable_bitmapscan = off"

// Open implements webhooks.Queue: the keys are read in one statement, only when a body holds a sealed
// value, and never cached, so an erasure is seen by the next send. A sealed value is a JSON string of
// characters that need no escaping (pii.Prefix, base64url, ',' and ':'), so it is found and replaced where
// it stands, without decoding the body; a body where that does not hold is opened the general way.
func (w *Webhooks) Open(ctx context.Context, bodies []*json.RawMessage) error {
	type found struct {
		body       int
		start, end int // the sealed value's bytes, quotes excluded
	}
	var (
		spots    []found
		general  []*json.RawMessage
		subjects = map[string]bool{}
	)
	for i, b := range bodies {
		if b == nil {
			continue
		}
		raw, from, ok := *b, 0, true
		var mine []found
		for ok {
			j := bytes.Index(raw[from:], sealedStart)
			if j < 0 {
				break
			}
			start := from + j + 1
			end := bytes.IndexByte(raw[start:], '"')
			if end < 0 || (start > 1 && raw[start-2] == '\\') {
				ok = false
				break
			}
			end += start
			v := raw[start:end]
			if !sealedAlphabet(v) {
				ok = false
				break
			}
			subs, err := pii.Subjects(string(v))
			if err != nil {
				ok = false
				break
			}
			for _, s := range subs {
				subjects[s] = true
			}
			mine = append(mine, found{i, start, end})
			from = end + 1
		}
		if !ok {
			general = append(general, b)
			continue
		}
		spots = append(spots, mine...)
	}
	if len(general) > 0 {
		if err := pii.OpenFields(ctx, w.pool, pii.Fields{JSON: general}); err != nil {
			return fmt.Errorf("open webhook bodies: %w", err)
		}
	}
	if len(spots) == 0 {
		return nil
	}
	list := make([]string, 0, len(subjects))
	for s := range subjects {
		list = append(list, s)
	}
	keys, err := pii.Keys(ctx, w.pool, list...)
	if err != nil {
		return fmt.Errorf("open webhook bodies: %w", err)
	}
	// Each body rebuilt once, its sealed values replaced by their JSON-encoded plaintext (or "[erased]").
	for k := 0; k < len(spots); {
		i, raw := spots[k].body, *bodies[spots[k].body]
		out := make([]byte, 0, len(raw))
		last := 0
		for ; k < len(spots) && spots[k].body == i; k++ {
			plain, err := json.Marshal(pii.OpenOrErased(string(raw[spots[k].start:spots[k].end]), keys))
			if err != nil {
				return fmt.Errorf("open webhook bodies: %w", err)
			}
			out = append(append(out, raw[last:spots[k].start-1]...), plain...)
			last = spots[k].end + 1
		}
		*bodies[i] = append(out, raw[last:]...)
	}
	return nil
}

// sealedStart is how a sealed JSON string begins.
var sealedStart = []byte(`"` + pii.Prefix)

// sealedAlphabet reports whether v holds only the characters of a sealed value.
func sealedAlphabet(v []byte) bool {
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':' || c == ',') {
			return false
		}
	}
	return true
}

// excerptMax bounds the part of a receiver's answer kept with an attempt.
const excerptMax = 512

func excerpt(s string) string {
	if len(s) > excerptMax {
		s = s[:excerptMax]
	}
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// Record implements webhooks.Queue, in one statement: the endpoints' health, and for each attempt either
// a retry (an attempt row; the pending row's attempts and next time) or the delivery's end (the pending
// row deleted; the delivery row's state and last-attempt columns set, an update with no index entry: no
// index of webhook_deliveries holds what it changes, so it is HOT when the page has room). A delivery's
// last attempt is on its row and only the earlier ones, failures all, have rows of their own: a delivery
// that succeeds at once writes no attempt row. A repeated record changes nothing: each outcome applies
// only to a pending row with fewer attempts than its own, and the delivery row only with its pending row.
func (w *Webhooks) Record(ctx context.Context, os []webhooks.Outcome, health []webhooks.Health) error {
	n := len(os)
	ids, endpoints, resources := make([]int64, n), make([][16]byte, n), make([]string, n)
	attempts, codes, latency := make([]int32, n), make([]int32, n), make([]int32, n)
	at, next := make([]time.Time, n), make([]time.Time, n)
	errs, excerpts, states := make([]string, n), make([]string, n), make([]string, n)
	for i, o := range os {
		ids[i], endpoints[i], resources[i] = o.DeliveryID, o.Endpoint, o.Resource
		attempts[i], codes[i], latency[i] = int32(o.Attempt), int32(o.StatusCode), int32(o.Latency.Milliseconds())
		at[i], next[i], errs[i], excerpts[i], states[i] = o.At, o.Next, excerpt(o.Error), excerpt(o.Excerpt), o.State
		if o.Next.IsZero() {
			next[i] = o.At
		}
	}
	m := len(health)
	healthEndpoints, ok, disableBefore, reasons := make([][16]byte, m), make([]bool, m), make([]time.Time, m), make([]string, m)
	for i, h := range health {
		healthEndpoints[i], ok[i], disableBefore[i], reasons[i] = h.Endpoint, h.Succeeded, h.DisableBefore, h.Reason
	}
	if _, err := w.pool.Exec(ctx, `
		with r as (
			select * from unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[], $5::timestamptz[], $6::int[],
			                     $7::text[], $8::int[], $9::text[], $10::text[], $11::timestamptz[])
			       as r(delivery_id, endpoint_id, resource_id, attempt, at, code, err, latency, excerpt, state, next_at)
		), retried as (
			update webhook_pending p set attempts = r.attempt, next_attempt_at = r.next_at
			from r
			where r.state = 'PENDING' and (p.endpoint_id, p.resource_id, p.delivery_id) = (r.endpoint_id, r.resource_id, r.delivery_id)
			  and p.attempts < r.attempt
			returning p.delivery_id
		), failures as (
			insert into webhook_attempts (delivery_id, attempt, at, status_code, error, latency_ms, response_excerpt)
			select r.delivery_id, r.attempt, r.at, nullif(r.code, 0), nullif(r.err, ''), r.latency, r.excerpt
			from r join retried using (delivery_id)
			on conflict do nothing
		), finished as (
			delete from webhook_pending p
			using r
			where r.state <> 'PENDING' and (p.endpoint_id, p.resource_id, p.delivery_id) = (r.endpoint_id, r.resource_id, r.delivery_id)
			  and p.attempts < r.attempt
			returning p.delivery_id
		), h as (
			select * from unnest($12::uuid[], $13::bool[], $14::timestamptz[], $15::text[])
			       as h(endpoint_id, ok, disable_before, reason)
		), health as (
			update webhook_endpoints e set
				failing_since = case when h.ok then null else coalesce(e.failing_since, now()) end,
				status = case when not h.ok and coalesce(e.failing_since, now()) < h.disable_before and e.status = 'ENABLED'
				              then 'DISABLED' else e.status end,
				disabled_reason = case when not h.ok and coalesce(e.failing_since, now()) < h.disable_before and e.status = 'ENABLED'
				                       then h.reason else e.disabled_reason end,
				updated_at = case when not h.ok and coalesce(e.failing_since, now()) < h.disable_before and e.status = 'ENABLED'
				                  then now() else e.updated_at end
			from h where e.endpoint_id = h.endpoint_id and (not h.ok or e.failing_since is not null)
		)
		update webhook_deliveries d set state = r.state, attempts = r.attempt, completed_at = r.at,
			last_at = r.at, last_status_code = nullif(r.code, 0), last_error = nullif(r.err, ''),
			last_latency_ms = r.latency, last_excerpt = r.excerpt
		from r join finished using (delivery_id)
		where d.delivery_id = r.delivery_id and d.state = 'PENDING'`,
		ids, endpoints, resources, attempts, at, codes, errs, latency, excerpts, states, next,
		healthEndpoints, ok, disableBefore, reasons); err != nil {
		return fmt.Errorf("record webhook attempts: %w", err)
	}
	return nil
}
