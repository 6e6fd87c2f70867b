// Package expiry is the watcher of collect requests' due dates: it finds the requests still pending past
// their expires_at in the "payments" projection (collect_requests) and has the command service append
// their CollectExpired (contract.PathCollectExpiries). Every tick reads the table afresh, so a watcher
// started after a pause (a restart, a crash) catches up with whatever fell due meanwhile; an expiry asked
// twice, by two ticks or two processes, is replayed by the command service, never appended twice.
package expiry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/contract"
)

// ClientID is the client id the watcher names itself with on internal calls.
const ClientID = "event-consumers"

// Watcher expires due collect requests.
type Watcher struct {
	Pool    *pgxpool.Pool
	BaseURL string // the command service
	Client  *http.Client
	Log     *slog.Logger
	// Every is the time between two looks at the table (1s if zero): with the projection's lag, a request
	// expires within about that much of its expires_at.
	Every time.Duration
}

// Run ticks until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	every := w.Every
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := w.Tick(ctx); err != nil && ctx.Err() == nil {
			w.Log.Warn("collect expiry: tick failed; trying again", "err", err)
		} else if n > 0 {
			w.Log.Debug("collect expiry: expired", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick expires the requests due now; it returns how many it asked for.
func (w *Watcher) Tick(ctx context.Context) (int, error) {
	rows, err := w.Pool.Query(ctx, `select collect_id from collect_requests
		where status = 'PENDING' and expires_at <= now() order by expires_at limit $1`, contract.MaxCollectExpiries)
	if err != nil {
		return 0, fmt.Errorf("read due collect requests: %w", err)
	}
	var due []uuid.UUID
	for rows.Next() {
		var id [16]byte
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read due collect requests: %w", err)
		}
		due = append(due, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read due collect requests: %w", err)
	}
	if len(due) == 0 {
		return 0, nil
	}
	res, err := w.call(ctx, due)
	if err != nil {
		return 0, err
	}
	for _, r := range res {
		if r.Problem != nil {
			// A request not due yet by the database's clock, or already closed: the next tick sees it again
			// until the projection catches up.
			w.Log.Info("collect expiry: not expired", "collect_id", r.CollectID, "code", r.Problem.Code, "detail", r.Problem.Detail)
		}
	}
	return len(due), nil
}

func (w *Watcher) call(ctx context.Context, due []uuid.UUID) ([]contract.CollectExpiryResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body, err := json.Marshal(contract.CollectExpiriesRequest{CollectIDs: due})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.BaseURL+contract.PathCollectExpiries, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(contract.HeaderClientID, ClientID)
	resp, err := w.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("expire collect requests: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("expire collect requests: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("expire collect requests: %d: %s", resp.StatusCode, raw)
	}
	var out contract.CollectExpiriesResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("expire collect requests: undecodable answer: %w", err)
	}
	return out.Results, nil
}
