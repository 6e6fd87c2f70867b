// Package runner follows the event log for named consumers, each from its own checkpoint: projections,
// whose writes commit in the same transaction as the checkpoint, and processors (the payment workflow),
// whose side effects happen outside any transaction before the checkpoint moves (at least once).
//
// The rules it keeps (docs/architecture.md, "Read path"):
//   - the log is read only with eventstore.ReadLog (for the live consumers, through the process's one
//     eventstore.LogCache), below the transaction-id horizon, and the checkpoint
//     is the (tx_id, global_position) pair of the last event handled;
//   - the checkpoint moves by compare-and-set from the position the batch was read after, so a batch is
//     never applied twice even when two workers (a lost lock, a rebuild) race: the loser rolls back and
//     reloads;
//   - one active worker per consumer name across processes, by a session advisory lock;
//   - polling backs off while idle, and a NOTIFY hint (one LISTEN connection per process) wakes it.
package runner

import (
	"context"

	"github.com/jackc/pgx/v5"

	"upi/shared/platform/eventstore"
)

// Consumer is a Projection or a Processor.
type Consumer interface {
	// Name is the consumer's stable name: its checkpoint row and its lock. Renaming it starts it over.
	Name() string
}

// Projection builds read-model tables from the log.
type Projection interface {
	Consumer
	// Tables are the tables the projection owns and alone writes, unqualified; a rebuild makes shadow
	// copies of them. Apply must use these names unqualified, so that it can be pointed at the copies.
	Tables() []string
	// Apply applies a batch of events, in log order, inside tx. The batch's checkpoint update commits in
	// the same transaction. An event the projection cannot apply (an unknown type of its aggregates, a
	// version that is not the next one) must be an error: the batch is rolled back and retried, and the
	// consumer stalls loudly rather than building a wrong read model.
	Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error
}

// Selective is a Projection that says which events it uses. A batch with none of them changes none of its
// tables: the runner moves its checkpoint with one statement instead of a transaction (below saturation,
// where a batch is often one event of another aggregate, that is most of a projection's round trips).
// Uses must be true for every event Apply writes or checks anything for.
type Selective interface {
	Uses(e eventstore.Event) bool
}

// Processor reacts to events with side effects outside the database (HTTP calls). Handle runs outside
// any transaction; the checkpoint moves after it returns nil. On an error the same batch is handed again
// after a back-off, so Handle must be idempotent (it may also see a batch again after a crash).
type Processor interface {
	Consumer
	Handle(ctx context.Context, batch []eventstore.Event) error
}

// Partitioned is a consumer that can be split into partitions (Options.Partitions, partition.go): N
// workers that each apply the events whose partition key hashes to their part. Every row the consumer
// writes must be written only by events of one key (or, idempotently, by an event of key AllPartitions,
// which every partition applies), and the events whose relative order matters to the consumer must share
// a key: each partition applies its events in log order, but partitions move independently.
type Partitioned interface {
	Consumer
	PartitionKey(e eventstore.Event) string
}

// SelfTraced is a consumer that starts spans of its own for what it does (the workflow, a span per step):
// the runner adds none around its batches.
type SelfTraced interface {
	Consumer
	SelfTraced()
}
