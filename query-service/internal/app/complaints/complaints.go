// Package complaints answers the reads of complaints: a client's own (the payer's owner, who raised it,
// or the merchant's, the payee's owner) and the operators' queue. It reads the "complaints" projection
// through the Reader port.
package complaints

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"upi/shared/contract"
	"upi/shared/platform/eventstore"
)

// Errors of the queries.
var (
	ErrNotFound    = errors.New("complaint not found")
	ErrUnavailable = eventstore.ErrUnavailable
)

// Complaint is a complaint with the owners who may read it.
type Complaint struct {
	contract.Complaint
	PayerOwner, PayeeOwner string
}

// Reader reads the complaints projection.
type Reader interface {
	Complaint(ctx context.Context, id uuid.UUID) (c Complaint, found bool, err error)
	Queue(ctx context.Context, status string) ([]contract.Complaint, error)
}

// Queries are the complaint reads.
type Queries struct{ r Reader }

// New returns the queries over r.
func New(r Reader) *Queries { return &Queries{r: r} }

// Complaint is complaint id, for its payer's or payee's owner; anyone else gets ErrNotFound.
func (q *Queries) Complaint(ctx context.Context, client string, id uuid.UUID) (contract.Complaint, error) {
	c, found, err := q.r.Complaint(ctx, id)
	if err != nil {
		return contract.Complaint{}, err
	}
	if !found || client == "" || (client != c.PayerOwner && client != c.PayeeOwner) {
		return contract.Complaint{}, ErrNotFound
	}
	return c.Complaint, nil
}

// Queue is the operators' queue of complaints with status ("" for all).
func (q *Queries) Queue(ctx context.Context, status string) (contract.ComplaintList, error) {
	items, err := q.r.Queue(ctx, status)
	if items == nil {
		items = []contract.Complaint{}
	}
	return contract.ComplaintList{Items: items}, err
}
