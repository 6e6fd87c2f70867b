// Package pgtrace traces a PostgreSQL pool's queries. It is apart from observability so that a service with
// no database (the gateway) does not link the driver.
package pgtrace

import (
	"context"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"upi/shared/platform/observability"
)

// Pool makes the pool trace its queries and batches (as children of the caller's span only, so a
// poll loop with no span makes no traces) when tracing is on. It is a db.Open option.
//
// A batch is one span: its statements travel in one round trip, so a span each would time nothing, and
// at a dozen statements per group commit they were most of a payment's spans and half of what tracing
// cost. A statement that fails is recorded on the batch's span, with its SQL.
func Pool(cfg *pgxpool.Config) {
	if observability.Tracing() {
		cfg.ConnConfig.Tracer = batchSpan{otelpgx.NewTracer(otelpgx.WithDisableAcquireTracer(), otelpgx.WithTrimSQLInSpanName())}
	}
}

// batchSpan is otelpgx's tracer with one span per batch instead of one more per statement.
type batchSpan struct{ *otelpgx.Tracer }

// TraceBatchQuery records a failed statement on the batch's span; a statement that succeeds adds nothing.
func (b batchSpan) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if data.Err == nil {
		return
	}
	span := trace.SpanFromContext(ctx)
	span.RecordError(data.Err, trace.WithAttributes(semconv.DBQueryText(data.SQL)))
}
