package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// Checkpoint moves asked for at once share statements, and each is still its own compare-and-set: the
// moves from where a row is go through, with their notification; a move from where a row is not fails
// alone, whatever shares its statement.
func TestCheckpointMovesShareStatementsAndFailAlone(t *testing.T) {
	t.Parallel()
	pool, url := testenv.PostgresPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	listener, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(context.Background())
	if _, err := listener.Exec(ctx, "listen "+projection.CheckpointChannel); err != nil {
		t.Fatal(err)
	}

	const consumers, rounds = 12, 40
	names := make([]string, consumers)
	for i := range names {
		names[i] = fmt.Sprintf("moves-%d", i)
		if _, err := LoadCheckpoint(ctx, pool, names[i]); err != nil {
			t.Fatal(err)
		}
	}
	stale := names[0] // moved behind its worker's back before every round
	moves := &checkpointMoves{pool: pool}
	at := func(r int) eventstore.Position { return eventstore.Position{TxID: uint64(r), GlobalPosition: int64(r)} }

	for r := range rounds {
		if _, err := pool.Exec(ctx, `update projection_checkpoints set tx_id = $2::text::xid8, global_position = $3
			where name = $1`, stale, fmt.Sprint(1000+r), 1000+r); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, consumers)
		var wg sync.WaitGroup
		for i, name := range names {
			wg.Go(func() { errs[i] = moves.advance(ctx, name, at(r), at(r+1)) })
		}
		wg.Wait()
		for i, err := range errs {
			switch {
			case names[i] == stale && !errors.Is(err, errCheckpointMoved):
				t.Fatalf("round %d: the move of a row that is elsewhere: %v, want errCheckpointMoved", r, err)
			case names[i] != stale && err != nil:
				t.Fatalf("round %d: %s: %v", r, names[i], err)
			}
		}
	}
	if n := moves.statements.Load(); n >= consumers*rounds {
		t.Fatalf("%d moves asked for %d at a time took %d statements: none shared", consumers*rounds, consumers, n)
	} else {
		t.Logf("%d moves asked for %d at a time took %d statements", consumers*rounds, consumers, n)
	}
	for _, name := range names[1:] {
		p, err := LoadCheckpoint(ctx, pool, name)
		if err != nil {
			t.Fatal(err)
		}
		if p != at(rounds) {
			t.Fatalf("%s at %v after %d rounds, want %v", name, p, rounds, at(rounds))
		}
	}
	// One notification per move that went through, naming its consumer and position.
	want := map[string]bool{}
	for _, name := range names[1:] {
		for r := 1; r <= rounds; r++ {
			want[projection.CheckpointPayload(name, at(r))] = true
		}
	}
	for len(want) > 0 {
		n, err := listener.WaitForNotification(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if name, _, ok := projection.ParseCheckpointPayload(n.Payload); !ok || name == stale {
			t.Fatalf("notification %q: not a move that went through", n.Payload)
		}
		delete(want, n.Payload)
	}
}
