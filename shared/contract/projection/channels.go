// Package projection names what the event consumers and the query service agree on about the read
// models: the projections' names and the NOTIFY channels on which the consumers tell readers that a
// read model has moved. A notification is only a hint for waking waiters; readers always read the
// tables (and the checkpoint) themselves.
package projection

import (
	"strings"

	"upi/shared/contract/position"
)

// Projection names: each is a row in projection_checkpoints.
const (
	Accounts = "accounts"
	Payments = "payments"
	// Settlement files completed money movements under their settlement cycle and bank.
	Settlement = "settlement"
	// Complaints are the payers' complaints about payments.
	Complaints = "complaints"
)

// CheckpointChannel carries "NAME:TOKEN" each time a consumer's checkpoint moves (sent inside the batch
// transaction, so it is delivered only if the batch committed).
const CheckpointChannel = "upi_projection_checkpoint"

// PaymentSettledChannel carries comma-separated ids of payments that became terminal in a committed batch.
const PaymentSettledChannel = "upi_payment_settled"

// CheckpointPayload is the payload of a CheckpointChannel notification.
func CheckpointPayload(name string, p position.Position) string { return name + ":" + p.Token() }

// ParseCheckpointPayload reads a CheckpointChannel payload.
func ParseCheckpointPayload(s string) (string, position.Position, bool) {
	name, token, ok := strings.Cut(s, ":")
	if !ok {
		return "", position.Position{}, false
	}
	p, err := position.Parse(token)
	if err != nil {
		return "", position.Position{}, false
	}
	return name, p, true
}

// Merchant is the name of the projection of QR codes and mandates.
const Merchant = "merchant"
