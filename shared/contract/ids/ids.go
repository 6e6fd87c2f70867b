// Package ids derives the deterministic identifiers that make retries safe. A client command's ids come
// from (client, method, path, idempotency key); a workflow step's event id comes from its payment and step.
// A repeat therefore meets a unique constraint in the event store instead of producing a second effect.
package ids

import (
	"encoding/hex"
	"strconv"

	"github.com/google/uuid"
)

// namespace is fixed forever: changing it would change every derived id.
var namespace = uuid.MustParse("5b0c1f0e-2f7d-4a8e-9d0a-6e1f3c7b2a41")

// ClientCommand is the id of the effect of a client command: the payment id of a payment, the event id of
// an account opening or a deposit.
func ClientCommand(clientID, method, path, idempotencyKey string) uuid.UUID {
	return uuid.NewSHA1(namespace, []byte("client\x00"+clientID+"\x00"+method+"\x00"+path+"\x00"+idempotencyKey))
}

// Step names of the payment workflow. Each step of a payment has exactly one event id, whatever its
// outcome, so two outcomes of one step can never both be recorded.
const (
	// StepDebit: AccountDebited or DebitRejected on the payer.
	StepDebit = "debit"
	// StepSettle: AccountCredited on the payee or DebitReversed on the payer. Sharing one event id
	// across the two streams means the unique event_id makes crediting and reversing mutually exclusive.
	StepSettle = "settle"
	// StepClose: PaymentCompleted or PaymentFailed on the payment.
	StepClose = "close"
	// StepOpen: a refund's RefundInitiated on its own stream. (A refund's debit, settle and close slots
	// are those above, keyed by the refund id.)
	StepOpen = "open"
	// StepRecord: a refund's RefundSettled on its payment's stream.
	StepRecord = "record"
)

// CollectPayment is the id of the payment a collect request's approval starts: one per collect request,
// however often it is approved.
func CollectPayment(collectID uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(namespace, []byte("collect-payment\x00"+collectID.String()))
}

// StepEvent is the event id of one workflow step of a payment.
func StepEvent(paymentID uuid.UUID, step string) uuid.UUID {
	return uuid.NewSHA1(namespace, []byte("step\x00"+paymentID.String()+"\x00"+step))
}

// UPITxnID is the UPI transaction id of a payment: "UPI" and the 32 lower-case hex digits of the payment
// id, so it is unique, fixed at initiation and the same on every replay.
func UPITxnID(paymentID uuid.UUID) string {
	return "UPI" + hex.EncodeToString(paymentID[:])
}

// Deposit is the event id of the deposit into account vpa that carries reference: a reference is taken once
// per account, so a second deposit with it meets the first instead of crediting again.
func Deposit(vpa, reference string) uuid.UUID {
	return uuid.NewSHA1(namespace, []byte("deposit\x00"+vpa+"\x00"+reference))
}

// SettlementLeg is the event id of the bank's side of a deposit or withdrawal whose account side has event
// id leg: one per movement, however often its command is retried.
func SettlementLeg(leg uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(namespace, []byte("settlement-leg\x00"+leg.String()))
}

// Erasure is the event id of the erasure of account vpa (AccountErased): one per account, so erasing twice,
// under any key, answers the first erasure.
func Erasure(vpa string) uuid.UUID {
	return uuid.NewSHA1(namespace, []byte("erasure\x00"+vpa))
}

// QR is the id (and stream) of payee's dynamic QR code with the merchant reference ref: a reference names
// one QR per payee, so the payment of an intent finds its QR from the link alone.
func QR(payee, ref string) uuid.UUID {
	return uuid.NewSHA1(namespace, []byte("qr\x00"+payee+"\x00"+ref))
}

// MandatePayment is the payment of attempt of mandate's debit notification: a timer that fires twice
// answers the same payment.
func MandatePayment(mandate, notification uuid.UUID, attempt int) uuid.UUID {
	return uuid.NewSHA1(namespace, []byte("mandate-payment\x00"+mandate.String()+"\x00"+notification.String()+"\x00"+strconv.Itoa(attempt)))
}

// UMN is the unique mandate number of a mandate: its id's 32 hex digits at the payer's handle.
func UMN(mandate uuid.UUID, handle string) string {
	return hex.EncodeToString(mandate[:]) + "@" + handle
}

// ComplaintRefund is the refund id of attempt n (from 1) of a dispute's settlement: the merchant's accept
// and the chargeback take the same first one, so only one of them can reserve it on the payment; a retry
// after a failed attempt takes the next.
func ComplaintRefund(complaintID uuid.UUID, attempt int) uuid.UUID {
	return uuid.NewSHA1(namespace, []byte("complaint-refund\x00"+complaintID.String()+"\x00"+strconv.Itoa(attempt)))
}

// ComplaintRetry is the event id of the ComplaintRefundRetried that starts attempt n (from 2).
func ComplaintRetry(complaintID uuid.UUID, attempt int) uuid.UUID {
	return StepEvent(complaintID, "refund-"+strconv.Itoa(attempt))
}
