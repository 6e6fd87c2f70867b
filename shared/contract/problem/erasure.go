package problem

// Codes of erasure (POST /v1/ops/erasures, docs/architecture.md, "Personal data and erasure").
const (
	// CodeAccountClosed: the account was erased and is closed for good (deposits, withdrawals and payment
	// initiations with a note on it are refused; a lookup of its VPA answers 410).
	CodeAccountClosed = "ACCOUNT_CLOSED"
	// CodeAccountNotEmpty: only an account with a zero balance can be erased.
	CodeAccountNotEmpty = "ACCOUNT_NOT_EMPTY"
	// CodeAccountInFlight: a payment or refund that debited the account has not ended yet.
	CodeAccountInFlight = "ACCOUNT_IN_FLIGHT"
)
