package eventstore

import (
	"context"
	"sort"
	"sync"
	"time"
)

// LogCache serves ReadLog to the consumers of one process, which follow the same log at about the same
// place: the first to read a run of the log reads it from the database, the others from memory, each
// event's payload decoded once for all of them.
//
// It keeps one run of the log: every event after a position lo up to its last, in log order, as ReadLog
// returned them. Such a run is final: ReadLog returns only events of transactions below the horizon, all
// committed, and any event appended later belongs to a transaction at or above it, so it sorts after
// the run's last event. A read after a position inside the run is served from memory up to the run's end
// and completed from the database, which extends the run; a read from before the run (a consumer far
// behind) goes to the database and leaves the run alone; a read from past its end starts a new run.
//
// Consumers woken by one append hint, or polling at about the same moment, each ask the database whether
// the log goes on past the run; below saturation those reads are most of the log's reads and almost all
// of them find nothing. So the cache also remembers the last time the database was found to hold nothing
// past the run's end (a read that returned fewer events than it asked for): for fresh, and as long as no
// hint has arrived since that read began (Hinted), a read that reaches the run's end ends there. Ending
// early is always safe (a consumer that gets fewer events than there are polls again); a hinted append is
// never missed, as the hint invalidates the finding before any consumer is woken by it.
//
// For the same reason, a read that must ask the database waits for a read of the database already under
// way from the same position, when no hint has arrived since that one began, and takes its answer: that
// read sees everything this one would (the consumers woken by one hint ask the database once, not once
// each).
type LogCache struct {
	q      Querier
	size   int
	decode Decoder
	fresh  time.Duration

	mu  sync.Mutex
	lo  Position
	run []Event
	// hints counts Hinted calls; ended is the last finding that the log ended at a position.
	hints uint64
	ended logEnd
	// appended is the highest transaction id hinted (Appended): its events are committed, though perhaps
	// not below the horizon yet.
	appended uint64
	// reading is the latest read of the database under way, if any.
	reading *logRead
}

// logRead is a read of the database after from, begun after hints hints; done closes when it has ended,
// its events added to the run. ended tells that it found nothing after endAt (it returned fewer events
// than it asked for); err that it failed.
type logRead struct {
	from  Position
	hints uint64
	done  chan struct{}
	err   error
	ended bool
	endAt Position
}

// logEnd is a finding that the database held nothing after at (below the horizon) for a read that began
// at since, after hints hints.
type logEnd struct {
	at    Position
	since time.Time
	hints uint64
	valid bool
}

// NewLogCache returns a cache of size to twice size events of the log read through q. decode, when not nil,
// gives each event its Data (the event contract's decoder): consumers must then treat Data as read-only,
// as they share it. fresh is how long a finding that the log ends is trusted when no hint arrives (0: never
// trusted, every read that reaches the run's end asks the database).
func NewLogCache(q Querier, size int, decode Decoder, fresh time.Duration) *LogCache {
	return &LogCache{q: q, size: size, decode: decode, fresh: fresh}
}

// Hinted records that an append was hinted: a finding that the log ended, made before, is not trusted
// again. Call it before waking the consumers the hint is for.
func (c *LogCache) Hinted() {
	c.mu.Lock()
	c.hints++
	c.mu.Unlock()
}

// Appended records a hint that announced the events of transactions up to tx (ParseHint; 0 announces
// none), then does what Hinted does. Call it, rather than Hinted, before waking the consumers the hint is
// for.
func (c *LogCache) Appended(tx uint64) {
	c.mu.Lock()
	c.hints++
	c.appended = max(c.appended, tx)
	c.mu.Unlock()
}

// Pending reports whether a consumer that has read up to p has more to read that is committed and
// announced by a hint: events of a transaction after p's, which the horizon may still hold back for the
// few milliseconds that transactions begun before it take to end. Such a consumer should poll again soon
// rather than back off. A read that ends at such a p is never answered from the finding that the log ends
// there.
func (c *LogCache) Pending(p Position) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return p.TxID < c.appended
}

// ReadLog is ReadLog: up to limit events after after, in log order, below the horizon.
func (c *LogCache) ReadLog(ctx context.Context, after Position, limit int) ([]Event, error) {
	for {
		out, ended := c.cached(after, limit)
		if len(out) == limit || ended {
			return out, nil
		}
		from := after
		if len(out) > 0 {
			from = out[len(out)-1].Position
		}
		c.mu.Lock()
		if r := c.reading; r != nil && r.from == from && r.hints == c.hints {
			c.mu.Unlock()
			select {
			case <-r.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			// Its events are in the run now (when from was the run's end): served from there, and when it
			// found the log's end there, that is this read's answer too.
			out, ended = c.cached(after, limit)
			last := from
			if len(out) > 0 {
				last = out[len(out)-1].Position
			}
			if len(out) == limit || ended || r.err == nil && r.ended && r.endAt == last {
				return out, nil
			}
			continue // not enough: ask the database (or join a later read)
		}
		r := &logRead{from: from, hints: c.hints, done: make(chan struct{})}
		c.reading = r
		began := logEnd{since: time.Now(), hints: c.hints}
		c.mu.Unlock()
		more, err := c.read(ctx, from, limit-len(out), began)
		c.mu.Lock()
		if c.reading == r {
			c.reading = nil
		}
		r.err = err
		if err == nil && len(more) < limit-len(out) {
			r.ended, r.endAt = true, from
			if len(more) > 0 {
				r.endAt = more[len(more)-1].Position
			}
		}
		c.mu.Unlock()
		close(r.done)
		if err != nil {
			return nil, err
		}
		return append(out, more...), nil
	}
}

// read reads up to limit events after from from the database, decodes them and adds them to the run.
func (c *LogCache) read(ctx context.Context, from Position, limit int, began logEnd) ([]Event, error) {
	more, err := ReadLog(ctx, c.q, from, limit)
	if err != nil {
		return nil, err
	}
	if len(more) < limit {
		began.at, began.valid = from, true
		if len(more) > 0 {
			began.at = more[len(more)-1].Position
		}
	}
	if c.decode != nil {
		for i := range more {
			// An event that does not decode is left without Data: its consumer decodes it and reports it.
			if data, err := c.decode(more[i].Type, more[i].Payload); err == nil {
				more[i].Data = data
			}
		}
	}
	c.add(from, more, began)
	return more, nil
}

// cached is a copy of up to limit events of the run after after, when after is in the run; ended reports
// that the copy reaches a position after which the log was recently found to end, with no hint since.
func (c *LogCache) cached(after Position, limit int) (evs []Event, ended bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.run) == 0 || after.Less(c.lo) {
		return nil, c.endsAt(after)
	}
	i := 0
	if after != c.lo {
		// The first event after after; after must be an event of the run, as a checkpoint always is.
		i = sort.Search(len(c.run), func(i int) bool { return after.Less(c.run[i].Position) })
		if i == 0 || c.run[i-1].Position != after {
			return nil, false
		}
	}
	n := min(limit, len(c.run)-i)
	// A copy of what the run holds, no larger: a batch is often a few events, and a slice of limit events
	// zeroed for each of a process's consumers on every read was a tenth of the consumers' CPU.
	evs = append(make([]Event, 0, n), c.run[i:i+n]...)
	last := after
	if n > 0 {
		last = evs[n-1].Position
	}
	return evs, n < limit && c.endsAt(last)
}

// endsAt reports whether the log was found to end at p recently enough, and with no hint since the read
// that found it began. c.mu is held.
func (c *LogCache) endsAt(p Position) bool {
	e := c.ended
	return e.valid && e.at == p && e.hints == c.hints && p.TxID >= c.appended && time.Since(e.since) < c.fresh
}

// add records evs, read from the database after from: they extend the run when from is its end, start a
// new one when from is past it, and are not kept when from is before it. The run is then cut to size.
// found is what the read found about the log's end; it replaces an older finding.
func (c *LogCache) add(from Position, evs []Event, found logEnd) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if found.valid && (!c.ended.valid || c.ended.since.Before(found.since)) {
		c.ended = found
	}
	if len(evs) == 0 {
		return
	}
	end := c.lo
	if len(c.run) > 0 {
		end = c.run[len(c.run)-1].Position
	}
	switch {
	case from == end:
		c.run = append(c.run, evs...)
	case end.Less(from) || len(c.run) == 0:
		c.lo, c.run = from, append([]Event(nil), evs...)
	default:
		return
	}
	// Cut back to size once the run is twice as long, so that the copy is paid once per size events.
	if over := len(c.run) - c.size; over > c.size {
		c.lo = c.run[over-1].Position
		c.run = append(make([]Event, 0, 2*c.size), c.run[over:]...)
	}
}

// Decoder decodes a stored payload of an event type into the value a decision or a consumer reads (the
// event contract's decoder, through DecodeWith); the store and the log cache keep it as Event.Data.
type Decoder func(eventType string, payload []byte) (any, error)

// DecodeWith is decode as a Decoder.
func DecodeWith[P any](decode func(eventType string, payload []byte) (P, error)) Decoder {
	return func(eventType string, payload []byte) (any, error) { return decode(eventType, payload) }
}

// PayloadOf is e's payload as P: its Data when it has one of that type (its appender's, or a decoder's
// that read it), else its stored payload decoded.
func PayloadOf[P any](e Event, decode func(eventType string, payload []byte) (P, error)) (P, error) {
	if p, ok := e.Data.(P); ok {
		return p, nil
	}
	return decode(e.Type, e.Payload)
}
