package workflow

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"upi/shared/contract"
)

// ParkedMetric is the count of parked steps of kind step.
func (w *Workflow) ParkedMetric(step contract.StepName) prometheus.Counter {
	return w.metrics.parked.WithLabelValues(string(step))
}

// RetryParkedOnce is one round of RetryParked, with its error.
func (w *Workflow) RetryParkedOnce(ctx context.Context) error { return w.retryParked(ctx) }
