// Package postgres holds the command service's own reads of the event store that the eventstore library
// does not offer.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/events"
)

// Accounts looks accounts up by their opening event.
type Accounts struct{ pool *pgxpool.Pool }

// NewAccounts returns the lookup on pool.
func NewAccounts(pool *pgxpool.Pool) Accounts { return Accounts{pool: pool} }

// Opening returns the AccountOpened of vpa (version 1 of its stream), and false when there is none. The
// opening never changes, so one indexed row answers "does it exist, and whose is it" however long the
// account's stream has grown.
func (a Accounts) Opening(ctx context.Context, vpa string) (events.AccountOpenedV1, bool, error) {
	var raw []byte
	err := a.pool.QueryRow(ctx, `select payload from events
		where aggregate_id = $1 and version = 1 and aggregate_type = $2 and event_type = $3`,
		vpa, events.AggregateAccount, events.AccountOpened).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return events.AccountOpenedV1{}, false, nil
	}
	if err != nil {
		return events.AccountOpenedV1{}, false, fmt.Errorf("read opening of %s: %w", vpa, err)
	}
	var opened events.AccountOpenedV1
	if err := json.Unmarshal(raw, &opened); err != nil {
		return events.AccountOpenedV1{}, false, fmt.Errorf("decode opening of %s: %w", vpa, err)
	}
	return opened, true, nil
}
