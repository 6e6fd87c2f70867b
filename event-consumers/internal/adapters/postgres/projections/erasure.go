package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"upi/shared/platform/eventstore"
)

// closedRows are the accounts a batch erased (AccountErased): closed for good. Their holder names need no
// rewriting here: they are sealed with the holder's key, which the erasure destroyed, so every read and
// every rebuild shows them erased (docs/architecture.md, "Personal data and erasure").
type closedRows struct {
	vpa []string
	at  []time.Time
}

func (r *closedRows) add(e eventstore.Event) {
	r.vpa, r.at = append(r.vpa, e.AggregateID), append(r.at, e.CreatedAt)
}

func (r *closedRows) write(ctx context.Context, tx pgx.Tx) error {
	if len(r.vpa) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `
		update accounts a set closed_at = u.at
		from unnest($1::text[], $2::timestamptz[]) as u(vpa, at) where a.vpa = u.vpa`, r.vpa, r.at); err != nil {
		return fmt.Errorf("close erased accounts: %w", err)
	}
	return nil
}
