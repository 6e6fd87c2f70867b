package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CollectRequests reads the "payments" projection's collect requests (collect_requests); it implements
// expiry.DueCollects.
type CollectRequests struct {
	pool *pgxpool.Pool
}

// NewCollectRequests returns the collect requests of the database behind pool.
func NewCollectRequests(pool *pgxpool.Pool) *CollectRequests {
	return &CollectRequests{pool: pool}
}

// DueCollects implements expiry.DueCollects.
func (c *CollectRequests) DueCollects(ctx context.Context, limit int) ([]uuid.UUID, error) {
	rows, err := c.pool.Query(ctx, `select collect_id from collect_requests
		where status = 'PENDING' and expires_at <= now() order by expires_at limit $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read due collect requests: %w", err)
	}
	defer rows.Close()
	var due []uuid.UUID
	for rows.Next() {
		var id [16]byte
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read due collect requests: %w", err)
		}
		due = append(due, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read due collect requests: %w", err)
	}
	return due, nil
}
