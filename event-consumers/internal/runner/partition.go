package runner

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// Partitions: a consumer that implements Partitioned can be split into N workers (Options.Partitions),
// each with the checkpoint row, lock, quarantine rows and metrics label NAME#K/N (K = 0..N-1). Every
// worker reads the whole log, through the process's one LogCache, and applies only the events whose
// partition key hashes to K (PartitionOf); its checkpoint moves over the whole batch it read. Workers take
// their locks like any consumer, so N partitions spread over the replicas that run the consumer.
//
// The row NAME stays the consumer's checkpoint as the rest of the system reads it: it is kept at the
// minimum of the partitions' rows, so that "NAME reached P" still means that every event up to P is
// applied (syncNameSQL, worker.syncName). Locks on checkpoint rows are always taken in one order: the
// partitions' rows in layout and K order, then NAME. A partition worker's batch holds its own row, then
// NAME; a rebuild's swap or a checkpoint reset holds every partition's row, then NAME; nothing takes a
// partition's row while holding NAME, so no two of them can wait on each other in a cycle.

// AllPartitions is the partition key of an event that every partition must apply: one whose row is read
// by events of every key and written by it alone, idempotently (the payments projection's account
// owners). No aggregate id is "*".
const AllPartitions = "*"

// PartitionOf is the partition, of n, that owns key: FNV-1a (64 bits) of the key's bytes, modulo n. It
// must never change: every process, of every version, must agree on which partition owns an event, or
// two of them would apply it (or none would).
func PartitionOf(key string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(key)) //nolint:errcheck // a hash never fails
	return int(h.Sum64() % uint64(n))
}

// PartitionName is the name of partition k of n of the consumer name: its checkpoint row, its lock
// (consumer:NAME#K/N), its quarantine rows and its metrics label.
func PartitionName(name string, k, n int) string {
	return name + "#" + strconv.Itoa(k) + "/" + strconv.Itoa(n)
}

// PartitionNames are the names of the n partitions of name, in K order (none when n < 2).
func PartitionNames(name string, n int) []string {
	if n < 2 {
		return nil
	}
	names := make([]string, n)
	for k := range names {
		names[k] = PartitionName(name, k, n)
	}
	return names
}

// ParsePartition splits a checkpoint row's name into the consumer's name and its layout: ok is false for
// a row that is no partition's.
func ParsePartition(row string) (name string, k, n int, ok bool) {
	name, rest, found := strings.Cut(row, "#")
	if !found {
		return row, 0, 0, false
	}
	ks, ns, found := strings.Cut(rest, "/")
	if !found {
		return row, 0, 0, false
	}
	k, err1 := strconv.Atoi(ks)
	n, err2 := strconv.Atoi(ns)
	if err1 != nil || err2 != nil || n < 2 || k < 0 || k >= n {
		return row, 0, 0, false
	}
	return name, k, n, true
}

// partition is what a partition worker knows of its place: which consumer, which layout, which part.
type partition struct {
	base string // NAME
	k, n int
	key  func(eventstore.Event) string
	// names are the layout's rows, in K order.
	names []string
	// sync is the statement that moves NAME to the minimum of names (syncNameSQL).
	sync string
}

func newPartition(base string, k, n int, key func(eventstore.Event) string) *partition {
	names := PartitionNames(base, n)
	return &partition{base: base, k: k, n: n, key: key, names: names, sync: syncNameSQL(base, names)}
}

// owns reports whether e is this partition's to apply.
func (p *partition) owns(e eventstore.Event) bool {
	key := p.key(e)
	return key == AllPartitions || PartitionOf(key, p.n) == p.k
}

// syncNameSQL is the statement that keeps NAME at the minimum of the partitions' rows, notifying
// projection.CheckpointChannel as an unpartitioned consumer's advance does, only when NAME moved. It is
// two statements sent together in the simple protocol, after the partition's own row moved in the same
// transaction (a batch's, or the implicit one of a message sent outside any): the first locks NAME; the
// second, which under READ COMMITTED takes a new snapshot after the lock was granted, reads the
// partitions' rows. Whoever updated NAME before committed before the lock was granted, so its partition's
// row is seen; whoever updates it after sees this partition's row. The last to take the lock therefore
// sets NAME to the true minimum, and NAME never lags behind the partitions once they stop. NAME only
// moves forward here (a reset or a rebuild sets it outright), and only when every partition's row exists
// (they are created together, createRows). The names are consumer names, quoted as literals.
func syncNameSQL(base string, names []string) string {
	lits := make([]string, len(names))
	for i, n := range names {
		lits[i] = quoteLiteral(n)
	}
	name := quoteLiteral(base)
	in := strings.Join(lits, ", ")
	return `select 1 from projection_checkpoints where name = ` + name + ` for update;
		update projection_checkpoints c set tx_id = m.tx_id, global_position = m.global_position, updated_at = now()
		from (select tx_id, global_position, count(*) over () as rows from projection_checkpoints
			where name in (` + in + `) order by tx_id, global_position limit 1) m
		where c.name = ` + name + ` and m.rows = ` + strconv.Itoa(len(names)) + `
		  and (c.tx_id, c.global_position) < (m.tx_id, m.global_position)
		returning pg_notify(` + quoteLiteral(projection.CheckpointChannel) + `, ` + name + ` || ':' || ` +
		positionToken("m.tx_id", "m.global_position") + `)`
}

// positionToken is the SQL of eventstore.Position.Token: the two numbers' 16 big-endian bytes in
// unpadded URL-safe base64.
func positionToken(tx, gp string) string {
	return `translate(rtrim(encode(int8send(` + tx + `::text::bigint) || int8send(` + gp + `), 'base64'), '='), '+/', '-_')`
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// createRows creates the layout's rows that do not exist yet at NAME's position (NAME created at the
// start of the log if it is new), and moves up to NAME those left behind it by an earlier spell of this
// layout: a row of the running layout is never behind NAME (NAME is their minimum), so one that is was
// left when another layout took over, which has applied the events in between.
func (p *partition) createRows(ctx context.Context, q execQuerier) error {
	if _, err := LoadCheckpoint(ctx, q, p.base); err != nil {
		return err
	}
	if _, err := q.Exec(ctx, `insert into projection_checkpoints as r (name, tx_id, global_position)
		select k, c.tx_id, c.global_position from projection_checkpoints c, unnest($2::text[]) k
		where c.name = $1
		on conflict (name) do update set tx_id = excluded.tx_id, global_position = excluded.global_position,
			updated_at = now()
		where (r.tx_id, r.global_position) < (excluded.tx_id, excluded.global_position)`, p.base, p.names); err != nil {
		return fmt.Errorf("create the partitions of %s: %w", p.base, err)
	}
	return nil
}

// layoutRow is a checkpoint row of one of a consumer's layouts.
type layoutRow struct {
	name string
	k, n int
	pos  eventstore.Position
}

// layoutRows reads every partition row of the consumer base, of any layout.
func layoutRows(ctx context.Context, q querier, base string) ([]layoutRow, error) {
	rows, err := q.Query(ctx, `select name, tx_id::text::bigint, global_position from projection_checkpoints
		where left(name, length($1) + 1) = $1 || '#'`, base)
	if err != nil {
		return nil, fmt.Errorf("read the partitions of %s: %w", base, err)
	}
	defer rows.Close()
	var out []layoutRow
	for rows.Next() {
		var r layoutRow
		if err := rows.Scan(&r.name, &r.pos.TxID, &r.pos.GlobalPosition); err != nil {
			return nil, fmt.Errorf("read the partitions of %s: %w", base, err)
		}
		var name string
		var ok bool
		if name, r.k, r.n, ok = ParsePartition(r.name); ok && name == base {
			out = append(out, r)
		}
	}
	return out, rows.Err()
}

// lockLayout locks, in tx, every partition row of base (of every layout, by layout and then K) and then
// NAME, creating NAME if it is new. It returns NAME's position and the partitions' rows. The order is the
// one every writer of checkpoint rows keeps (see above).
func lockLayout(ctx context.Context, tx pgx.Tx, base string) (eventstore.Position, []layoutRow, error) {
	if _, err := LoadCheckpoint(ctx, tx, base); err != nil {
		return eventstore.Start, nil, err
	}
	rows, err := layoutRows(ctx, tx, base)
	if err != nil {
		return eventstore.Start, nil, err
	}
	slices.SortFunc(rows, func(a, b layoutRow) int { return cmp.Or(cmp.Compare(a.n, b.n), cmp.Compare(a.k, b.k)) })
	for i, r := range rows {
		if err := tx.QueryRow(ctx, `select tx_id::text::bigint, global_position from projection_checkpoints
			where name = $1 for update`, r.name).Scan(&rows[i].pos.TxID, &rows[i].pos.GlobalPosition); err != nil {
			return eventstore.Start, nil, fmt.Errorf("lock checkpoint %s: %w", r.name, err)
		}
	}
	live, err := lockCheckpoint(ctx, tx, base)
	return live, rows, err
}

// setLayout sets, in tx (which holds their locks, lockLayout), NAME and the rows of the layout of n
// partitions to `to`, creating them if needed, and the rows of every other layout too: what a rebuild
// leaves, a consumer whose every event up to `to` is applied, in any layout (a row that is not ahead of
// NAME is ignored). NAME's readers are notified as by an advance.
func setLayout(ctx context.Context, tx pgx.Tx, base string, n int, to eventstore.Position) error {
	names := append(PartitionNames(base, n), base)
	if _, err := tx.Exec(ctx, `update projection_checkpoints set tx_id = $2::text::xid8, global_position = $3,
			updated_at = now()
		where left(name, length($1) + 1) = $1 || '#'`, base, strconv.FormatUint(to.TxID, 10), to.GlobalPosition); err != nil {
		return fmt.Errorf("set the other layouts of %s: %w", base, err)
	}
	if _, err := tx.Exec(ctx, `insert into projection_checkpoints (name, tx_id, global_position)
		select k, $2::text::xid8, $3 from unnest($1::text[]) k
		on conflict (name) do update set tx_id = excluded.tx_id, global_position = excluded.global_position,
			updated_at = now()`,
		names, strconv.FormatUint(to.TxID, 10), to.GlobalPosition); err != nil {
		return fmt.Errorf("set the checkpoints of %s: %w", base, err)
	}
	if _, err := tx.Exec(ctx, `select pg_notify($1, $2)`, projection.CheckpointChannel,
		projection.CheckpointPayload(base, to)); err != nil {
		return fmt.Errorf("notify checkpoint of %s: %w", base, err)
	}
	return nil
}

// mine is the part of batch this worker applies: all of it, unless the worker is a partition (its own
// events) or follows another layout (not what that layout applied).
func (w *worker) mine(batch []eventstore.Event) []eventstore.Event {
	if w.part == nil && len(w.old) == 0 {
		return batch
	}
	out := batch[:0:0]
	for _, e := range batch {
		if (w.part == nil || w.part.owns(e)) && !w.applied(e) {
			out = append(out, e)
		}
	}
	return out
}

// syncName moves NAME to the minimum of the partitions' rows (syncNameSQL) in tx, a partition's batch
// transaction, after its own row (the lock order) and its writes: NAME moves in the same commit as the
// rows it covers. Nothing for an unpartitioned worker.
func (w *worker) syncName(ctx context.Context, tx pgx.Tx) error {
	if w.part == nil {
		return nil
	}
	start := time.Now()
	if _, err := tx.Exec(ctx, w.part.sync); err != nil {
		return fmt.Errorf("move %s to its partitions' minimum: %w", w.base, err)
	}
	w.r.m.nameSync.WithLabelValues(w.name).Observe(time.Since(start).Seconds())
	return nil
}

// moveName moves NAME to the minimum of the partitions' rows (syncNameSQL) outside any transaction, as
// one message (its snapshot is taken after whatever this partition committed); nothing for an
// unpartitioned worker. A failure is logged and the move made again before the worker's next batch.
func (w *worker) moveName(ctx context.Context) {
	if w.part == nil {
		return
	}
	start := time.Now()
	if _, err := w.r.pool.Exec(ctx, w.part.sync); err != nil {
		w.nameDue.Store(true)
		if ctx.Err() == nil {
			w.log.Warn("consumer's checkpoint not moved to its partitions' minimum; trying again", "err", err)
		}
		return
	}
	w.r.m.nameSync.WithLabelValues(w.name).Observe(time.Since(start).Seconds())
}

// loadCheckpoint returns the worker's checkpoint, creating it if it is new: a partition's rows are created
// at NAME's position. Rows of another layout are looked at first (loadLayouts).
func (w *worker) loadCheckpoint(ctx context.Context) (eventstore.Position, error) {
	if err := w.loadLayouts(ctx); err != nil {
		return eventstore.Start, err
	}
	if w.part != nil {
		if err := w.part.createRows(ctx, w.r.pool); err != nil {
			return eventstore.Start, err
		}
	}
	return LoadCheckpoint(ctx, w.r.pool, w.name)
}

// Changing the layout (CONSUMER_PARTITIONS). The rows of the layout a worker runs start at NAME's
// position; rows of another layout ahead of NAME have applied events after it, which must not be applied
// again (a projection's version checks would stall on them; the workflow would repeat steps). So a worker
// skips every event that the other layout's partition owning it has already passed (its row's position
// is at or after the event's): that partition applied it, or skipped it because a layout before it had.
// Rows of another layout that NAME has passed are of no more use and ignored (they stay: the consumers'
// database role may not delete checkpoint rows). Every replica must run the same layout: the old layout's
// rows must not move while the new one follows them (docs/deployment.md, "Changing CONSUMER_PARTITIONS").

// oldLayout is another layout's rows that were ahead of NAME when the worker started: by K, the position
// each had reached (the start of the log for a row already gone).
type oldLayout struct {
	n   int
	pos []eventstore.Position
}

// applied reports whether an older layout has applied e already.
func (w *worker) applied(e eventstore.Event) bool {
	if len(w.old) == 0 || w.oldMax.Less(e.Position) {
		return false
	}
	key := w.key(e)
	for _, l := range w.old {
		if key == AllPartitions {
			for _, p := range l.pos {
				if !p.Less(e.Position) {
					return true
				}
			}
			continue
		}
		if !l.pos[PartitionOf(key, l.n)].Less(e.Position) {
			return true
		}
	}
	return false
}

// loadLayouts reads, before a Partitioned consumer's worker starts, the checkpoint rows of other layouts
// than the one it runs: those ahead of NAME are kept in w.old (applied), the others ignored. The
// events other layouts (or the unpartitioned consumer) hold in quarantine that this worker owns become
// its own, so that their streams keep waiting behind them.
func (w *worker) loadLayouts(ctx context.Context) error {
	w.old, w.oldMax = nil, eventstore.Start
	if !w.splittable {
		return nil
	}
	n := 1
	if w.part != nil {
		n = w.part.n
	}
	rows, err := layoutRows(ctx, w.r.pool, w.base)
	if err != nil {
		return err
	}
	name, err := LoadCheckpoint(ctx, w.r.pool, w.base)
	if err != nil {
		return err
	}
	layouts := map[int]*oldLayout{}
	for _, r := range rows {
		switch {
		case r.n == n, !name.Less(r.pos):
		default:
			l := layouts[r.n]
			if l == nil {
				l = &oldLayout{n: r.n, pos: make([]eventstore.Position, r.n)}
				layouts[r.n] = l
			}
			l.pos[r.k] = r.pos
			if w.oldMax.Less(r.pos) {
				w.oldMax = r.pos
			}
		}
	}
	for _, l := range layouts {
		w.old = append(w.old, *l)
	}
	if len(w.old) > 0 {
		w.log.Info("another layout's checkpoints are ahead of the consumer's: the events they applied are skipped",
			"checkpoint", name.Token(), "until", w.oldMax.Token())
	}
	return w.adoptQuarantine(ctx)
}

// adoptQuarantine makes the held events of the consumer's other layouts (and of the consumer itself,
// unpartitioned, when this worker is a partition) that this worker owns its own.
func (w *worker) adoptQuarantine(ctx context.Context) error {
	current := []string{w.base}
	if w.part != nil {
		current = w.part.names
	}
	rows, err := w.r.pool.Query(ctx, `select event_id from consumer_quarantine
		where `+ofConsumer+` and consumer <> all($2) and status = 'held'`, w.base, current)
	if err != nil {
		return fmt.Errorf("read the quarantine of %s's other layouts: %w", w.base, err)
	}
	evs, err := w.eventsOf(ctx, rows)
	if err != nil {
		return err
	}
	var mine []uuid.UUID
	for _, e := range evs {
		if w.part == nil || w.part.owns(e) {
			mine = append(mine, e.ID)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	// One row per event becomes this worker's (an event every partition applies may be held by several);
	// any other is dropped.
	return pgx.BeginFunc(ctx, w.r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `update consumer_quarantine q set consumer = $3
			from (select distinct on (event_id) consumer, event_id from consumer_quarantine
				where `+ofConsumer+` and consumer <> all($2) and status = 'held' and event_id = any($4)
				order by event_id, consumer) pick
			where q.consumer = pick.consumer and q.event_id = pick.event_id
			  and not exists (select 1 from consumer_quarantine m where m.consumer = $3 and m.event_id = q.event_id)`,
			w.base, current, w.name, mine); err != nil {
			return fmt.Errorf("adopt the quarantine of %s's other layouts: %w", w.base, err)
		}
		if _, err := tx.Exec(ctx, `update consumer_quarantine set status = 'dropped', release_requested_at = null
			where `+ofConsumer+` and consumer <> all($2) and status = 'held' and event_id = any($3)`,
			w.base, current, mine); err != nil {
			return fmt.Errorf("adopt the quarantine of %s's other layouts: %w", w.base, err)
		}
		w.log.Info("events another layout held in quarantine are now this worker's", "events", len(mine))
		return nil
	})
}

// passedOldLayouts forgets the other layouts once the worker has passed all their rows.
func (w *worker) passedOldLayouts(cp eventstore.Position) {
	if len(w.old) > 0 && !cp.Less(w.oldMax) {
		w.old = nil
		w.log.Info("the consumer has passed the other layout's checkpoints")
	}
}

// KeyCheckpoint is the checkpoint that says how far the consumer name has applied the events of partition
// key `key`: the furthest of NAME and of the rows of the partitions owning the key, in every layout there
// are rows of (the current one and, while the layout changes, the one before).
func KeyCheckpoint(ctx context.Context, q interface {
	execQuerier
	querier
}, name, key string) (eventstore.Position, error) {
	cp, err := LoadCheckpoint(ctx, q, name)
	if err != nil {
		return cp, err
	}
	rows, err := layoutRows(ctx, q, name)
	if err != nil {
		return cp, err
	}
	for _, r := range rows {
		if r.k == PartitionOf(key, r.n) && cp.Less(r.pos) {
			cp = r.pos
		}
	}
	return cp, nil
}

// advance moves the worker's checkpoint from `from` to `to` by compare-and-set outside a transaction and,
// for a partition, moves NAME after it (syncNameSQL). A partition sends both in one message, in one
// implicit transaction (its row, then NAME: the lock order), in one round trip instead of two.
func (w *worker) advance(ctx context.Context, from, to eventstore.Position) error {
	if w.part == nil {
		return w.r.moves.advance(ctx, w.name, from, to)
	}
	start := time.Now()
	conn, err := w.r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("advance checkpoint %s to %v: %w", w.name, to, err)
	}
	defer conn.Release()
	sql := `update projection_checkpoints set tx_id = '` + strconv.FormatUint(to.TxID, 10) + `'::xid8,
			global_position = ` + strconv.FormatInt(to.GlobalPosition, 10) + `, updated_at = now()
		where name = ` + quoteLiteral(w.name) + ` and tx_id = '` + strconv.FormatUint(from.TxID, 10) + `'::xid8
		  and global_position = ` + strconv.FormatInt(from.GlobalPosition, 10) + `;
		` + w.part.sync
	results, err := conn.Conn().PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		return fmt.Errorf("advance checkpoint %s to %v: %w", w.name, to, err)
	}
	w.r.m.nameSync.WithLabelValues(w.name).Observe(time.Since(start).Seconds())
	if len(results) == 0 || results[0].CommandTag.RowsAffected() != 1 {
		return errCheckpointMoved
	}
	return nil
}

// ofConsumer is the SQL condition, on a column named consumer and the parameter $1, that selects the rows
// of the consumer $1 and of its partitions, of any layout.
const ofConsumer = `(consumer = $1 or left(consumer, length($1) + 1) = $1 || '#')`
