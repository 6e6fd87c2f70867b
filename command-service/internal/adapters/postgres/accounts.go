// Package postgres holds the command service's own reads of the event store that the eventstore library
// does not offer.
package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/events"
)

// Accounts looks accounts up by their opening event.
type Accounts struct{ pool *pgxpool.Pool }

// NewAccounts returns the lookup on pool.
func NewAccounts(pool *pgxpool.Pool) Accounts { return Accounts{pool: pool} }

// Openings returns the AccountOpened (version 1 of the stream) of each VPA that has one. An opening never
// changes, so one indexed row per account answers "does it exist, and whose is it" however long its
// stream has grown.
func (a Accounts) Openings(ctx context.Context, vpas ...string) (map[string]events.AccountOpenedV1, error) {
	rows, err := a.pool.Query(ctx, `select aggregate_id, payload from events
		where aggregate_id = any($1) and version = 1 and aggregate_type = $2 and event_type = $3`,
		vpas, events.AggregateAccount, events.AccountOpened)
	if err != nil {
		return nil, fmt.Errorf("read openings of %v: %w", vpas, err)
	}
	defer rows.Close()
	out := make(map[string]events.AccountOpenedV1, len(vpas))
	for rows.Next() {
		var vpa string
		var raw []byte
		if err := rows.Scan(&vpa, &raw); err != nil {
			return nil, fmt.Errorf("read openings of %v: %w", vpas, err)
		}
		var opened events.AccountOpenedV1
		if err := json.Unmarshal(raw, &opened); err != nil {
			return nil, fmt.Errorf("decode opening of %s: %w", vpa, err)
		}
		out[vpa] = opened
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read openings of %v: %w", vpas, err)
	}
	return out, nil
}
