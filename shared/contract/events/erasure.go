package events

// Erasure of a person (docs/architecture.md, "Personal data and erasure"): the personal fields of payloads
// (AccountOpened.holder_name, PaymentInitiated.note, CollectRequested.note, the refunds' reason) are sealed
// with the keys of the people they name (shared/platform/pii); erasing an account destroys its key and
// closes the account for good.

// AccountErased closes an account for good and records that its holder's key was destroyed: every sealed
// field that names the holder reads "[erased]" from then on. Appended only on an account with a zero
// balance and no money of its own in flight. Its event id is ids.Erasure of the VPA, so erasing twice
// answers the first erasure.
const AccountErased = "AccountErased"

// CodeAccountClosed is the failure code of a debit (DebitRejected, RefundDebitRejected) of an erased
// account, and the problem code of every command refused on one; a credit refused by an erased payee ends
// its payment as PAYEE_UNAVAILABLE (the debit reversed).
const CodeAccountClosed = "ACCOUNT_CLOSED"

// NPCICodeAccountClosed is the NPCI code beside ACCOUNT_CLOSED (remitter account blocked or frozen).
const NPCICodeAccountClosed = "YE"

// AccountErasedV1 is the account's last event.
type AccountErasedV1 struct {
	VPA string `json:"vpa"`
	// Operator is the operator who erased it (the OPERATOR_KEYS name).
	Operator string `json:"operator"`
}

func (AccountErasedV1) EventType() string { return AccountErased }
