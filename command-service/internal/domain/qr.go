package domain

import (
	"errors"
	"fmt"
	"time"

	"upi/shared/contract/events"
)

// Refusals of a QR code and of a payment by intent.
var (
	ErrQRNotFound       = errors.New("qr code not found")
	ErrQRRefTaken       = errors.New("the payee already has a QR code with this merchant reference")
	ErrQRPaid           = errors.New("the QR code was already paid")
	ErrQRExpired        = errors.New("the QR code has expired")
	ErrQRAmountMismatch = errors.New("the amount does not match the QR code's")
	ErrQRNotAllowed     = errors.New("only an ENTITY account has QR codes")
)

// QR is the state of one dynamic QR's stream (keyed by ids.QR of its payee and merchant reference).
type QR struct {
	events.QRCreatedV1
	Expires   time.Time
	PaymentID string
}

// Created reports whether the QR exists.
func (q QR) Created() bool { return q.QRID != "" }

// Evolve folds one event of the QR's stream.
func (q QR) Evolve(e events.Payload) (QR, error) {
	switch e := e.(type) {
	case events.QRCreatedV1:
		if q.Created() {
			return q, fmt.Errorf("%w: qr %s created twice", ErrCorruptStream, e.QRID)
		}
		at, err := time.Parse(time.RFC3339Nano, e.ExpiresAt)
		if err != nil {
			return q, fmt.Errorf("%w: qr %s: expires_at %q", ErrCorruptStream, e.QRID, e.ExpiresAt)
		}
		return QR{QRCreatedV1: e, Expires: at}, nil
	case events.QRPaidV1:
		if !q.Created() || q.PaymentID != "" {
			return q, fmt.Errorf("%w: QRPaid on a qr paid or never created", ErrCorruptStream)
		}
		q.PaymentID = e.PaymentID
	default:
		return q, fmt.Errorf("%w: %s on a qr", ErrCorruptStream, e.EventType())
	}
	return q, nil
}

// Create opens the QR. A stream that exists already belongs to another request with the same reference.
func (q QR) Create(c events.QRCreatedV1) (events.QRCreatedV1, error) {
	if q.Created() {
		return events.QRCreatedV1{}, ErrQRRefTaken
	}
	return c, nil
}

// Pay claims the QR for one payment of amount, at now: once, before its expiry, for its fixed amount or at
// least its minimum.
func (q QR) Pay(paymentID string, amount int64, now time.Time) (events.QRPaidV1, error) {
	switch {
	case !q.Created():
		return events.QRPaidV1{}, ErrQRNotFound
	case q.PaymentID != "":
		return events.QRPaidV1{}, ErrQRPaid
	case !now.Before(q.Expires):
		return events.QRPaidV1{}, ErrQRExpired
	case q.AmountPaise > 0 && amount != q.AmountPaise:
		return events.QRPaidV1{}, fmt.Errorf("%w: the QR asks for %d paise", ErrQRAmountMismatch, q.AmountPaise)
	case q.MinPaise > 0 && amount < q.MinPaise:
		return events.QRPaidV1{}, fmt.Errorf("%w: the QR asks for at least %d paise", ErrQRAmountMismatch, q.MinPaise)
	}
	return events.QRPaidV1{QRTerms: q.QRTerms, PaymentID: paymentID, AmountPaise: amount}, nil
}
