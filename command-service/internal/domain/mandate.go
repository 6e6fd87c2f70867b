package domain

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"upi/shared/contract/events"
)

// Refusals of a mandate and of its debits; each has its own code (command-service/internal/httpapi).
var (
	ErrMandateNotFound      = errors.New("mandate not found")
	ErrMandateNotAllowed    = errors.New("only an ENTITY may request a mandate")
	ErrMandateExpired       = errors.New("the mandate request has expired")
	ErrMandateState         = errors.New("the mandate's state does not allow this")
	ErrMandateIrrevocable   = errors.New("the mandate is irrevocable")
	ErrMandatePaused        = errors.New("the mandate is paused")
	ErrMandateRevoked       = errors.New("the mandate is revoked")
	ErrMandateNotActive     = errors.New("the mandate is not active")
	ErrDebitAboveMax        = errors.New("the debit is above the mandate's maximum amount")
	ErrDebitNotExact        = errors.New("the debit is not the mandate's exact amount")
	ErrDebitOutsideValidity = errors.New("the debit is outside the mandate's validity")
	ErrDebitNoticeTooShort  = errors.New("the debit is notified less than the notice period before it")
	ErrDebitFrequency       = errors.New("the mandate's frequency allows no more debits in that period")
	ErrDebitNotFound        = errors.New("mandate debit not found")
	ErrDebitNoApproval      = errors.New("the debit does not need the payer's approval")
	ErrDebitApprovalClosed  = errors.New("the debit can no longer be approved")
	ErrMandateNotDue        = errors.New("nothing of the mandate is due")
)

// Mandate statuses.
const (
	MandatePending   = "PENDING_APPROVAL"
	MandateActive    = "ACTIVE"
	MandatePaused    = "PAUSED"
	MandateDeclined  = "DECLINED"
	MandateExpired   = "EXPIRED"
	MandateRevoked   = "REVOKED"
	MandateCompleted = "COMPLETED"
)

// Debit statuses.
const (
	DebitScheduled = "SCHEDULED"
	DebitExecuting = "EXECUTING"
	DebitRetry     = "RETRY_SCHEDULED"
	DebitSucceeded = "SUCCEEDED"
	DebitFailed    = "FAILED"
)

// Failure codes of a debit that ends without money moving, beside a payment's own codes.
const (
	CodeDebitNotApproved = "DEBIT_NOT_APPROVED"
	CodeMandatePaused    = "MANDATE_PAUSED"
	CodeMandateRevoked   = "MANDATE_REVOKED"
	CodeMandateNotActive = "MANDATE_NOT_ACTIVE"
)

// Frequencies, and whether a frequency is known.
var Frequencies = map[string]bool{"ONETIME": true, "DAILY": true, "WEEKLY": true, "FORTNIGHTLY": true, "MONTHLY": true,
	"BIMONTHLY": true, "QUARTERLY": true, "HALFYEARLY": true, "YEARLY": true, "ASPRESENTED": true}

// Debit is one notified debit of a mandate.
type Debit struct {
	ID            string
	Seq           int
	Amount        int64
	DebitAt       time.Time
	ExecuteAt     time.Time
	NeedsApproval bool
	ApproveBy     time.Time
	Approved      bool
	Status        string
	Attempt       int
	PaymentID     string
	RetryAt       time.Time
	Code          string
}

// Open reports whether the debit has not ended.
func (d Debit) Open() bool { return d.Status != DebitSucceeded && d.Status != DebitFailed }

// DueAt is when the debit's next attempt may run (zero while one runs or after it ended).
func (d Debit) DueAt() time.Time {
	switch d.Status {
	case DebitScheduled:
		return d.ExecuteAt
	case DebitRetry:
		return d.RetryAt
	}
	return time.Time{}
}

// Mandate is the state of one mandate's stream (keyed by the mandate id).
type Mandate struct {
	events.MandateRequestedV1
	From, Until, Expires time.Time
	Status               string
	Debits               map[string]Debit
	Order                []string // debit ids in notification order
}

// Requested reports whether the mandate exists.
func (m Mandate) Requested() bool { return m.Status != "" }

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// withDebit is m with debit d recorded; the map is copied, so that an earlier state (a group's savepoint)
// never sees the change.
func (m Mandate) withDebit(d Debit) Mandate {
	debits := maps.Clone(m.Debits)
	if debits == nil {
		debits = map[string]Debit{}
	}
	if _, seen := debits[d.ID]; !seen {
		m.Order = append(m.Order[:len(m.Order):len(m.Order)], d.ID)
	}
	debits[d.ID] = d
	m.Debits = debits
	return m
}

// Evolve folds one event of the mandate's stream.
func (m Mandate) Evolve(e events.Payload) (Mandate, error) {
	corrupt := func() (Mandate, error) {
		return m, fmt.Errorf("%w: %s on a %q mandate", ErrCorruptStream, e.EventType(), m.Status)
	}
	debit := func(id string) (Debit, bool) { d, ok := m.Debits[id]; return d, ok }
	switch e := e.(type) {
	case events.MandateRequestedV1:
		if m.Requested() {
			return corrupt()
		}
		from, err1 := parseTime(e.ValidFrom)
		until, err2 := parseTime(e.ValidUntil)
		exp, err3 := parseTime(e.ExpiresAt)
		if err := errors.Join(err1, err2, err3); err != nil {
			return m, fmt.Errorf("%w: mandate %s: %v", ErrCorruptStream, e.MandateID, err)
		}
		return Mandate{MandateRequestedV1: e, From: from, Until: until, Expires: exp, Status: MandatePending}, nil
	case events.MandateApprovedV1:
		if m.Status != MandatePending {
			return corrupt()
		}
		m.Status = MandateActive
	case events.MandateDeclinedV1, events.MandateExpiredV1:
		if m.Status != MandatePending {
			return corrupt()
		}
		m.Status = map[bool]string{true: MandateDeclined, false: MandateExpired}[e.EventType() == events.MandateDeclined]
	case events.MandatePausedV1:
		if m.Status != MandateActive {
			return corrupt()
		}
		m.Status = MandatePaused
	case events.MandateResumedV1:
		if m.Status != MandatePaused {
			return corrupt()
		}
		m.Status = MandateActive
	case events.MandateRevokedV1:
		if m.Status != MandateActive && m.Status != MandatePaused {
			return corrupt()
		}
		m.Status = MandateRevoked
	case events.MandateCompletedV1:
		if m.Status != MandateActive && m.Status != MandatePaused {
			return corrupt()
		}
		m.Status = MandateCompleted
	case events.MandateDebitNotifiedV1:
		debitAt, err1 := parseTime(e.DebitAt)
		execAt, err2 := parseTime(e.ExecuteAt)
		var by time.Time
		var err3 error
		if e.NeedsApproval {
			by, err3 = parseTime(e.ApproveBy)
		}
		if err := errors.Join(err1, err2, err3); err != nil || !m.Requested() {
			return m, fmt.Errorf("%w: debit %s: %v", ErrCorruptStream, e.NotificationID, err)
		}
		return m.withDebit(Debit{ID: e.NotificationID, Seq: len(m.Order) + 1, Amount: e.AmountPaise, DebitAt: debitAt,
			ExecuteAt: execAt, NeedsApproval: e.NeedsApproval, ApproveBy: by, Status: DebitScheduled}), nil
	case events.MandateDebitApprovedV1:
		d, ok := debit(e.NotificationID)
		if !ok {
			return corrupt()
		}
		d.Approved = true
		return m.withDebit(d), nil
	case events.MandateDebitAttemptedV1:
		d, ok := debit(e.NotificationID)
		if !ok || !d.Open() || d.Status == DebitExecuting {
			return corrupt()
		}
		d.Status, d.Attempt, d.PaymentID = DebitExecuting, e.Attempt, e.PaymentID
		return m.withDebit(d), nil
	case events.MandateDebitRetryScheduledV1:
		d, ok := debit(e.NotificationID)
		at, err := parseTime(e.RetryAt)
		if !ok || d.Status != DebitExecuting || err != nil {
			return corrupt()
		}
		d.Status, d.RetryAt, d.Code = DebitRetry, at, e.Code
		return m.withDebit(d), nil
	case events.MandateDebitSucceededV1:
		d, ok := debit(e.NotificationID)
		if !ok || d.Status != DebitExecuting {
			return corrupt()
		}
		d.Status, d.Code = DebitSucceeded, ""
		return m.withDebit(d), nil
	case events.MandateDebitFailedV1:
		d, ok := debit(e.NotificationID)
		if !ok || !d.Open() {
			return corrupt()
		}
		d.Status, d.Code = DebitFailed, e.Code
		return m.withDebit(d), nil
	default:
		return m, fmt.Errorf("%w: %s on a mandate", ErrCorruptStream, e.EventType())
	}
	return m, nil
}

// Fold applies evs in order (a decision's events onto the state it was made on).
func (m Mandate) Fold(evs ...events.Payload) (Mandate, error) {
	var err error
	for _, e := range evs {
		if m, err = m.Evolve(e); err != nil {
			return m, err
		}
	}
	return m, nil
}

// MandateRules are the settings a mandate's debits follow.
type MandateRules struct {
	Notice           time.Duration // MANDATE_NOTICE: how long before a debit it must be notified
	NoAuthLimitPaise int64         // MANDATE_NO_AUTH_LIMIT_PAISE: above it, the payer approves each debit (0: never)
	Retries          int           // MANDATE_RETRIES: attempts after a first one failed for the payer's funds
	RetryInterval    time.Duration // MANDATE_RETRY_INTERVAL: from a failed attempt to the next
	ApprovalWait     time.Duration // MANDATE_DEBIT_APPROVAL_WAIT: after execute_at, the deadline of an approval
	Peak             PeakWindows   // MANDATE_PEAK_WINDOWS
}

// DefaultMandateRules are NPCI's as publicly reported.
var DefaultMandateRules = MandateRules{Notice: 24 * time.Hour, NoAuthLimitPaise: 1_500_000, Retries: 3,
	RetryInterval: 4 * time.Hour, ApprovalWait: 24 * time.Hour, Peak: DefaultPeakWindows}

// RequestMandate is the command of a merchant asking a payer for a mandate; the caller has checked the
// accounts (PayeeType from the payee's opening, PayerClient the payer's owner).
type RequestMandate struct {
	events.MandateRequestedV1
	PayeeType string
}

// Request opens the mandate.
func (m Mandate) Request(cmd RequestMandate) (events.MandateRequestedV1, error) {
	switch {
	case m.Requested():
		return events.MandateRequestedV1{}, fmt.Errorf("%w: mandate %s requested twice", ErrCorruptStream, cmd.MandateID)
	case cmd.PayeeType != events.AccountEntity:
		return events.MandateRequestedV1{}, ErrMandateNotAllowed
	case cmd.PayerVPA == cmd.PayeeVPA:
		return events.MandateRequestedV1{}, fmt.Errorf("%w: payer and payee are both %s", ErrWrongAccount, cmd.PayerVPA)
	}
	return cmd.MandateRequestedV1, nil
}

func (m Mandate) decision(client, by string) events.MandateDecisionV1 {
	return events.MandateDecisionV1{MandateTerms: m.MandateTerms, ClientID: client, By: by}
}

// pending refuses a payer's answer to a mandate that is not pending, or pending past its expiry.
func (m Mandate) pending(now time.Time) error {
	switch {
	case !m.Requested():
		return ErrMandateNotFound
	case m.Status == MandateExpired || m.Status == MandatePending && !now.Before(m.Expires):
		return ErrMandateExpired
	case m.Status != MandatePending:
		return fmt.Errorf("%w: it is %s", ErrMandateState, m.Status)
	}
	return nil
}

// Approve is the payer's approval (the payer's authentication of the mandate). Approving an active
// mandate decides nothing (a repeat).
func (m Mandate) Approve(client string, now time.Time) ([]events.Payload, error) {
	if m.Status == MandateActive {
		return nil, nil
	}
	if err := m.pending(now); err != nil {
		return nil, err
	}
	return []events.Payload{events.MandateApprovedV1{MandateDecisionV1: m.decision(client, "")}}, nil
}

// Decline is the payer's refusal (NPCI ZA).
func (m Mandate) Decline(client string, now time.Time) ([]events.Payload, error) {
	if m.Status == MandateDeclined {
		return nil, nil
	}
	if err := m.pending(now); err != nil {
		return nil, err
	}
	return []events.Payload{events.MandateDeclinedV1{MandateDecisionV1: m.decision(client, "")}}, nil
}

// Pause stops an active mandate's debits until it is resumed (the payer only).
func (m Mandate) Pause(client string) ([]events.Payload, error) {
	switch m.Status {
	case MandatePaused:
		return nil, nil
	case MandateActive:
		return []events.Payload{events.MandatePausedV1{MandateDecisionV1: m.decision(client, "")}}, nil
	}
	return nil, fmt.Errorf("%w: only an ACTIVE mandate can be paused; it is %s", ErrMandateState, m.Status)
}

// Resume makes a paused mandate active again (the payer only).
func (m Mandate) Resume(client string) ([]events.Payload, error) {
	switch m.Status {
	case MandatePaused:
		return []events.Payload{events.MandateResumedV1{MandateDecisionV1: m.decision(client, "")}}, nil
	}
	return nil, fmt.Errorf("%w: only a PAUSED mandate can be resumed; it is %s", ErrMandateState, m.Status)
}

// Revoke ends the mandate for good, by the payer or the payee, unless it is irrevocable.
func (m Mandate) Revoke(client, by string) ([]events.Payload, error) {
	switch {
	case m.Status == MandateRevoked:
		return nil, nil
	case m.Status != MandateActive && m.Status != MandatePaused:
		return nil, fmt.Errorf("%w: only an ACTIVE or PAUSED mandate can be revoked; it is %s", ErrMandateState, m.Status)
	case !m.Revocable:
		return nil, ErrMandateIrrevocable
	}
	return []events.Payload{events.MandateRevokedV1{MandateDecisionV1: m.decision(client, by)}}, nil
}

// usable refuses a notification or an approval on a mandate that is not active, with the state's code.
func (m Mandate) usable() error {
	switch m.Status {
	case MandateActive:
		return nil
	case MandatePaused:
		return ErrMandatePaused
	case MandateRevoked:
		return ErrMandateRevoked
	case "":
		return ErrMandateNotFound
	}
	return fmt.Errorf("%w: it is %s", ErrMandateNotActive, m.Status)
}

// Notify records the merchant's pre-debit notification of amount at debitAt, if the mandate's rules allow
// it: active, notified at least rules.Notice before, within validity, the amount under the rule, and room
// in the frequency's period. The debit runs at debitAt, or at the end of the peak window it falls in; one
// above the no-authentication limit waits for the payer's approval until ApprovalWait past that.
func (m Mandate) Notify(id string, amount int64, debitAt time.Time, client string, rules MandateRules, now time.Time) (events.MandateDebitNotifiedV1, error) {
	var zero events.MandateDebitNotifiedV1
	if err := m.usable(); err != nil {
		return zero, err
	}
	switch {
	case debitAt.Before(now.Add(rules.Notice)):
		return zero, fmt.Errorf("%w (%s)", ErrDebitNoticeTooShort, rules.Notice)
	case debitAt.Before(m.From) || !debitAt.Before(m.Until):
		return zero, ErrDebitOutsideValidity
	case m.AmountRule == "EXACT" && amount != m.AmountPaise:
		return zero, ErrDebitNotExact
	case amount > m.AmountPaise:
		return zero, ErrDebitAboveMax
	case amount <= 0:
		return zero, ErrInvalidAmount
	}
	if !m.roomIn(debitAt) {
		return zero, ErrDebitFrequency
	}
	exec := rules.Peak.After(debitAt)
	n := events.MandateDebitNotifiedV1{MandateTerms: m.MandateTerms, NotificationID: id, AmountPaise: amount,
		DebitAt: events.Time(debitAt), ExecuteAt: events.Time(exec), ClientID: client}
	if rules.NoAuthLimitPaise > 0 && amount > rules.NoAuthLimitPaise {
		n.NeedsApproval, n.ApproveBy = true, events.Time(exec.Add(rules.ApprovalWait))
	}
	return n, nil
}

// roomIn reports whether the frequency allows one more debit in the period of at: debits that failed
// without moving money do not count.
func (m Mandate) roomIn(at time.Time) bool {
	if m.Frequency == "ASPRESENTED" {
		return true
	}
	start, end := m.period(at)
	for _, id := range m.Order {
		d := m.Debits[id]
		if d.Status == DebitFailed {
			continue
		}
		if m.Frequency == "ONETIME" || !d.DebitAt.Before(start) && d.DebitAt.Before(end) {
			return false
		}
	}
	return true
}

// period is the period of the mandate's frequency holding at: periods run back to back from the validity's
// start, in IST calendar days and months.
func (m Mandate) period(at time.Time) (start, end time.Time) {
	step := func(t time.Time) time.Time {
		switch m.Frequency {
		case "DAILY":
			return t.AddDate(0, 0, 1)
		case "WEEKLY":
			return t.AddDate(0, 0, 7)
		case "FORTNIGHTLY":
			return t.AddDate(0, 0, 14)
		case "MONTHLY":
			return t.AddDate(0, 1, 0)
		case "BIMONTHLY":
			return t.AddDate(0, 2, 0)
		case "QUARTERLY":
			return t.AddDate(0, 3, 0)
		case "HALFYEARLY":
			return t.AddDate(0, 6, 0)
		}
		return t.AddDate(1, 0, 0)
	}
	start = m.From.In(IST)
	for end = step(start); !at.Before(end); end = step(start) {
		start = end
	}
	return start, end
}

// ApproveDebit is the payer's approval of a debit above the no-authentication limit, before its deadline.
func (m Mandate) ApproveDebit(id, client string, now time.Time) ([]events.Payload, error) {
	d, ok := m.Debits[id]
	switch {
	case !ok:
		return nil, ErrDebitNotFound
	case !d.NeedsApproval:
		return nil, ErrDebitNoApproval
	case d.Approved:
		return nil, nil
	case !d.Open() || !now.Before(d.ApproveBy):
		return nil, ErrDebitApprovalClosed
	}
	if err := m.usable(); err != nil {
		return nil, err
	}
	return []events.Payload{events.MandateDebitApprovedV1{MandateTerms: m.MandateTerms, NotificationID: id, ClientID: client}}, nil
}

// PaymentOutcome is how a debit's running payment ended, as its close event says (Ended false: not yet).
type PaymentOutcome struct {
	Ended     bool
	Completed bool
	Code      string
}

// Advance decides what is due at now for debit id ("" for the mandate alone): the mandate's expiry or
// completion, and the debit's next step. paymentID names the payment of the next attempt; outcome is the
// running attempt's payment's. It returns no events when nothing is due.
func (m Mandate) Advance(id string, now time.Time, rules MandateRules, paymentID func(attempt int) string, outcome PaymentOutcome) ([]events.Payload, error) {
	if !m.Requested() {
		return nil, ErrMandateNotFound
	}
	var out []events.Payload
	if d, ok := m.Debits[id]; ok {
		evs := m.advanceDebit(d, now, rules, paymentID, outcome)
		out = append(out, evs...)
	}
	next, err := m.Fold(out...)
	if err != nil {
		return nil, err
	}
	switch {
	case next.Status == MandatePending && !now.Before(next.Expires):
		out = append(out, events.MandateExpiredV1{MandateDecisionV1: next.decision("", "")})
	case (next.Status == MandateActive || next.Status == MandatePaused) && !now.Before(next.Until) && !next.anyOpen():
		out = append(out, events.MandateCompletedV1{MandateDecisionV1: events.MandateDecisionV1{MandateTerms: m.MandateTerms, Reason: "VALIDITY_ENDED"}})
	}
	return out, nil
}

func (m Mandate) anyOpen() bool {
	for _, d := range m.Debits {
		if d.Open() {
			return true
		}
	}
	return false
}

func (m Mandate) advanceDebit(d Debit, now time.Time, rules MandateRules, paymentID func(int) string, outcome PaymentOutcome) []events.Payload {
	t := m.MandateTerms
	failed := func(code string) []events.Payload {
		return []events.Payload{events.MandateDebitFailedV1{MandateTerms: t, NotificationID: d.ID, Attempt: d.Attempt,
			PaymentID: d.PaymentID, Code: code}}
	}
	switch d.Status {
	case DebitExecuting:
		if !outcome.Ended {
			return nil
		}
		if outcome.Completed {
			out := []events.Payload{events.MandateDebitSucceededV1{MandateTerms: t, NotificationID: d.ID, Attempt: d.Attempt, PaymentID: d.PaymentID}}
			if m.Frequency == "ONETIME" && (m.Status == MandateActive || m.Status == MandatePaused) {
				out = append(out, events.MandateCompletedV1{MandateDecisionV1: events.MandateDecisionV1{MandateTerms: t, Reason: "DEBITED"}})
			}
			return out
		}
		if outcome.Code == events.CodeInsufficientFunds && d.Attempt <= rules.Retries {
			return []events.Payload{events.MandateDebitRetryScheduledV1{MandateTerms: t, NotificationID: d.ID, Attempt: d.Attempt,
				PaymentID: d.PaymentID, Code: outcome.Code, RetryAt: events.Time(rules.Peak.After(now.Add(rules.RetryInterval)))}}
		}
		return failed(outcome.Code)
	case DebitScheduled, DebitRetry:
		if d.NeedsApproval && !d.Approved {
			if !now.Before(d.ApproveBy) {
				return failed(CodeDebitNotApproved)
			}
			return nil
		}
		if now.Before(d.DueAt()) {
			return nil
		}
		switch m.Status {
		case MandateActive:
		case MandatePaused:
			return failed(CodeMandatePaused)
		case MandateRevoked:
			return failed(CodeMandateRevoked)
		default:
			return failed(CodeMandateNotActive)
		}
		return []events.Payload{events.MandateDebitAttemptedV1{MandateTerms: t, NotificationID: d.ID, Attempt: d.Attempt + 1,
			PaymentID: paymentID(d.Attempt + 1)}}
	}
	return nil
}
