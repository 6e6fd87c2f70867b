package contract

// Settlement cycles and reconciliation files, read by operators under /v1/ops/settlement/
// (docs/openapi.yaml). Amounts are paise.

// Settlement cycle statuses.
const (
	CycleOpen   = "OPEN"
	CycleClosed = "CLOSED"
)

// Sides of a reconciliation line: the bank's customer paid (DEBIT) or received (CREDIT).
const (
	SideDebit  = "DEBIT"
	SideCredit = "CREDIT"
)

// SettlementCycle is one settlement cycle, [starts_at, ends_at).
type SettlementCycle struct {
	CycleID   string  `json:"cycle_id"`
	StartsAt  string  `json:"starts_at"`
	EndsAt    string  `json:"ends_at"`
	Status    string  `json:"status"`
	ClosedAt  *string `json:"closed_at,omitempty"`
	Movements int64   `json:"movements"`
	// AmountPaise is the sum of the cycle's movements.
	AmountPaise int64 `json:"amount_paise"`
}

// SettlementCycleList is GET /v1/ops/settlement/cycles: the cycles that hold movements, newest first.
type SettlementCycleList struct {
	Items []SettlementCycle `json:"items"`
}

// SettlementPosition is one bank's position in one cycle: what its customers paid out (DEBIT lines) and
// received (CREDIT lines), fees, and the net (received - paid out - fees).
type SettlementPosition struct {
	Bank          string `json:"bank"`
	PaidOutPaise  int64  `json:"paid_out_paise"`
	ReceivedPaise int64  `json:"received_paise"`
	FeesPaise     int64  `json:"fees_paise"`
	NetPaise      int64  `json:"net_paise"`
	Debits        int64  `json:"debits"`
	Credits       int64  `json:"credits"`
}

// SettlementCycleDetail is GET /v1/ops/settlement/cycles/{cycle_id}: the cycle and every bank's position;
// net_sum_paise, the sum of the nets, is zero.
type SettlementCycleDetail struct {
	SettlementCycle
	Positions   []SettlementPosition `json:"positions"`
	NetSumPaise int64                `json:"net_sum_paise"`
}

// ReconLine is one line of a reconciliation file: one side of one movement at the file's bank.
type ReconLine struct {
	UPITxnID    string `json:"upi_txn_id"`
	RRN         string `json:"rrn"`
	Type        string `json:"type"`
	Side        string `json:"side"`
	PayerVPA    string `json:"payer_vpa"`
	PayeeVPA    string `json:"payee_vpa"`
	AmountPaise int64  `json:"amount_paise"`
	NPCICode    string `json:"npci_code"`
	Time        string `json:"time"`
}

// ReconTotals are a file's totals, equal to the bank's position in the cycle.
type ReconTotals struct {
	Lines         int64 `json:"lines"`
	PaidOutPaise  int64 `json:"paid_out_paise"`
	ReceivedPaise int64 `json:"received_paise"`
	FeesPaise     int64 `json:"fees_paise"`
	NetPaise      int64 `json:"net_paise"`
}

// ReconFile is a bank's reconciliation file for a closed cycle (JSON form; the CSV form has the lines).
type ReconFile struct {
	CycleID  string      `json:"cycle_id"`
	Bank     string      `json:"bank"`
	StartsAt string      `json:"starts_at"`
	EndsAt   string      `json:"ends_at"`
	Lines    []ReconLine `json:"lines"`
	Totals   ReconTotals `json:"totals"`
}

// Kinds of reconciliation differences.
const (
	ReconMissing    = "MISSING"    // in the ledger, not in the file
	ReconUnexpected = "UNEXPECTED" // in the file, not in the ledger
	ReconMismatch   = "MISMATCH"   // in both, a field differs
	ReconDuplicate  = "DUPLICATE"  // the file has the line twice
	ReconMalformed  = "MALFORMED"  // the file's line cannot be read
)

// ReconDifference is one difference between a submitted file and the ledger. Line is the file's line
// number (1 is the first line after a CSV header), 0 for a line the file lacks.
type ReconDifference struct {
	Kind     string `json:"kind"`
	Line     int    `json:"line,omitempty"`
	UPITxnID string `json:"upi_txn_id,omitempty"`
	Side     string `json:"side,omitempty"`
	Field    string `json:"field,omitempty"`
	File     string `json:"file,omitempty"`
	Ledger   string `json:"ledger,omitempty"`
}

// ReconReport is the answer of POST /v1/ops/settlement/cycles/{cycle_id}/banks/{bank}/reconciliation.
type ReconReport struct {
	CycleID     string            `json:"cycle_id"`
	Bank        string            `json:"bank"`
	Matched     int               `json:"matched"`
	OK          bool              `json:"ok"`
	Differences []ReconDifference `json:"differences"`
}
