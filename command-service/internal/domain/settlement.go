package domain

import (
	"fmt"
	"math"
	"time"

	"upi/shared/contract/events"
	"upi/shared/contract/money"
)

// Settlement is the state of one shard of a bank's settlement account: the bank's side of the deposits
// and withdrawals of the accounts on its handle. It has no opening (its first move starts it) and no floor:
// a negative balance is what the bank owes its account holders. Its moves are never refused for money, so
// the only thing its lock orders is the version of its events; it is sharded so that even that is spread.
type Settlement struct {
	Stream    string      `json:"stream"`
	Bank      string      `json:"bank"`
	Balance   money.Paise `json:"balance_paise"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// Evolve folds one event of the shard, checking its recorded balance.
func (s Settlement) Evolve(e events.Payload, at time.Time) (Settlement, error) {
	var m events.SettlementMove
	var delta money.Paise
	switch e := e.(type) {
	case events.SettlementDebitedV1:
		m, delta = e.SettlementMove, -money.Paise(e.AmountPaise)
	case events.SettlementCreditedV1:
		m, delta = e.SettlementMove, money.Paise(e.AmountPaise)
	default:
		return s, fmt.Errorf("%w: %s on a settlement account", ErrCorruptStream, e.EventType())
	}
	if s.Bank != "" && s.Bank != m.Bank {
		return s, fmt.Errorf("%w: a move of bank %s on bank %s's settlement", ErrCorruptStream, m.Bank, s.Bank)
	}
	s.Bank, s.Balance, s.UpdatedAt = m.Bank, s.Balance+delta, at
	if s.Balance != money.Paise(m.BalanceAfterPaise) {
		return s, fmt.Errorf("%w: %s leaves settlement balance %d, event says %d", ErrCorruptStream, e.EventType(),
			s.Balance, m.BalanceAfterPaise)
	}
	return s, nil
}

// Move is the bank's side of one account movement: the account, the id of the account's event (the leg
// it pairs with), and the amount.
type Move struct {
	Bank   string
	VPA    string
	Leg    string
	Amount money.Paise
}

// Fund pays out a deposit: money leaves the bank's side for the account.
func (s Settlement) Fund(m Move) (events.SettlementDebitedV1, error) {
	mv, err := s.move(m, -m.Amount)
	return events.SettlementDebitedV1{SettlementMove: mv}, err
}

// Receive takes in a withdrawal: money returns to the bank's side from the account.
func (s Settlement) Receive(m Move) (events.SettlementCreditedV1, error) {
	mv, err := s.move(m, m.Amount)
	return events.SettlementCreditedV1{SettlementMove: mv}, err
}

func (s Settlement) move(m Move, delta money.Paise) (events.SettlementMove, error) {
	if m.Amount <= 0 {
		return events.SettlementMove{}, ErrInvalidAmount
	}
	if s.Bank != "" && s.Bank != m.Bank {
		return events.SettlementMove{}, fmt.Errorf("%w: bank %s on bank %s's settlement", ErrWrongAccount, m.Bank, s.Bank)
	}
	if (delta > 0 && s.Balance > math.MaxInt64-delta) || (delta < 0 && s.Balance < math.MinInt64-delta) {
		return events.SettlementMove{}, ErrBalanceLimit
	}
	return events.SettlementMove{Bank: m.Bank, VPA: m.VPA, Leg: m.Leg, AmountPaise: int64(m.Amount),
		BalanceAfterPaise: int64(s.Balance + delta)}, nil
}
