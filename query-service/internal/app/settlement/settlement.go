// Package settlement answers the operators' questions about settlement cycles: the cycles, each bank's
// position in one, its reconciliation file (JSON or CSV, byte for byte the same after a rebuild of the
// projection, as it is written from the log only), and the check of a file a bank submits against the
// ledger, naming every difference. It reads the "settlement" projection through the Reader port.
package settlement

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"upi/shared/contract"
	"upi/shared/platform/eventstore"
)

// Errors of the queries; the HTTP layer maps them to problem codes.
var (
	ErrCycleNotFound = errors.New("settlement cycle not found")
	// ErrCycleOpen: a file is made only for a closed cycle, whose figures never change.
	ErrCycleOpen = errors.New("settlement cycle still open")
	// ErrBadFile: a submitted file is not a reconciliation file at all (its header or JSON shape).
	ErrBadFile = errors.New("not a reconciliation file")
	// ErrUnavailable: the database failed or could not be reached.
	ErrUnavailable = eventstore.ErrUnavailable
)

// Reader reads the settlement projection.
type Reader interface {
	// Cycles lists the cycles, newest first (status from the projection and the clock).
	Cycles(ctx context.Context) ([]contract.SettlementCycle, error)
	// Cycle is one cycle with every bank's position, by bank.
	Cycle(ctx context.Context, id string) (c contract.SettlementCycle, positions []contract.SettlementPosition, found bool, err error)
	// Lines are a bank's lines in a cycle, in file order (time, transaction id, side).
	Lines(ctx context.Context, cycle, bank string) ([]contract.ReconLine, error)
}

// Queries are the settlement queries.
type Queries struct{ r Reader }

// New returns the queries over r.
func New(r Reader) *Queries { return &Queries{r: r} }

// Cycles lists the settlement cycles.
func (q *Queries) Cycles(ctx context.Context) (contract.SettlementCycleList, error) {
	items, err := q.r.Cycles(ctx)
	if items == nil {
		items = []contract.SettlementCycle{}
	}
	return contract.SettlementCycleList{Items: items}, err
}

// Cycle is a cycle and every bank's position in it.
func (q *Queries) Cycle(ctx context.Context, id string) (contract.SettlementCycleDetail, error) {
	c, positions, found, err := q.r.Cycle(ctx, id)
	if err != nil {
		return contract.SettlementCycleDetail{}, err
	}
	if !found {
		return contract.SettlementCycleDetail{}, ErrCycleNotFound
	}
	d := contract.SettlementCycleDetail{SettlementCycle: c, Positions: positions}
	if d.Positions == nil {
		d.Positions = []contract.SettlementPosition{}
	}
	for _, p := range positions {
		d.NetSumPaise += p.NetPaise
	}
	return d, nil
}

// File is bank's reconciliation file for a closed cycle.
func (q *Queries) File(ctx context.Context, cycle, bank string) (contract.ReconFile, error) {
	c, _, found, err := q.r.Cycle(ctx, cycle)
	if err != nil {
		return contract.ReconFile{}, err
	}
	if !found {
		return contract.ReconFile{}, ErrCycleNotFound
	}
	if c.Status != contract.CycleClosed {
		return contract.ReconFile{}, ErrCycleOpen
	}
	lines, err := q.r.Lines(ctx, cycle, bank)
	if err != nil {
		return contract.ReconFile{}, err
	}
	f := contract.ReconFile{CycleID: c.CycleID, Bank: bank, StartsAt: c.StartsAt, EndsAt: c.EndsAt, Lines: lines}
	if f.Lines == nil {
		f.Lines = []contract.ReconLine{}
	}
	f.Totals = Totals(f.Lines)
	return f, nil
}

// Totals are the totals of a file's lines: its bank's position (no fees are charged).
func Totals(lines []contract.ReconLine) contract.ReconTotals {
	var t contract.ReconTotals
	for _, l := range lines {
		t.Lines++
		if l.Side == contract.SideDebit {
			t.PaidOutPaise += l.AmountPaise
		} else {
			t.ReceivedPaise += l.AmountPaise
		}
	}
	t.NetPaise = t.ReceivedPaise - t.PaidOutPaise - t.FeesPaise
	return t
}

// csvHeader is the first line of a CSV file, the names of its columns.
var csvHeader = []string{"upi_txn_id", "rrn", "type", "side", "payer_vpa", "payee_vpa", "amount_paise", "npci_code", "time"}

// CSV renders a file's lines as CSV (RFC 4180, CRLF line ends), header first.
func CSV(f contract.ReconFile) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.UseCRLF = true
	_ = w.Write(csvHeader)
	for _, l := range f.Lines {
		_ = w.Write(record(l))
	}
	w.Flush()
	return b.Bytes()
}

func record(l contract.ReconLine) []string {
	return []string{l.UPITxnID, l.RRN, l.Type, l.Side, l.PayerVPA, l.PayeeVPA, strconv.FormatInt(l.AmountPaise, 10), l.NPCICode, l.Time}
}

// Reconcile checks a file a bank submits (CSV with the header of CSV, or the JSON of File) against the
// ledger's lines of that bank and cycle, and names every difference: a line the file lacks, a line the
// ledger lacks, a field that differs, a line given twice, a line that cannot be read.
func (q *Queries) Reconcile(ctx context.Context, cycle, bank string, body []byte, isJSON bool) (contract.ReconReport, error) {
	ledger, err := q.File(ctx, cycle, bank)
	if err != nil {
		return contract.ReconReport{}, err
	}
	submitted, diffs, err := parse(body, isJSON)
	if err != nil {
		return contract.ReconReport{}, err
	}
	type key struct{ txn, side string }
	want := map[key]contract.ReconLine{}
	for _, l := range ledger.Lines {
		want[key{l.UPITxnID, l.Side}] = l
	}
	seen := map[key]bool{}
	report := contract.ReconReport{CycleID: cycle, Bank: bank}
	for i, l := range submitted {
		n := i + 1
		if l == nil {
			continue // malformed, already named
		}
		k := key{l.UPITxnID, l.Side}
		if seen[k] {
			diffs = append(diffs, contract.ReconDifference{Kind: contract.ReconDuplicate, Line: n, UPITxnID: l.UPITxnID, Side: l.Side})
			continue
		}
		seen[k] = true
		w, ok := want[k]
		if !ok {
			diffs = append(diffs, contract.ReconDifference{Kind: contract.ReconUnexpected, Line: n, UPITxnID: l.UPITxnID, Side: l.Side})
			continue
		}
		got, exp := record(*l), record(w)
		same := true
		for j := range got {
			if got[j] != exp[j] {
				same = false
				diffs = append(diffs, contract.ReconDifference{Kind: contract.ReconMismatch, Line: n, UPITxnID: l.UPITxnID,
					Side: l.Side, Field: csvHeader[j], File: got[j], Ledger: exp[j]})
			}
		}
		if same {
			report.Matched++
		}
	}
	for _, l := range ledger.Lines {
		if !seen[key{l.UPITxnID, l.Side}] {
			diffs = append(diffs, contract.ReconDifference{Kind: contract.ReconMissing, UPITxnID: l.UPITxnID, Side: l.Side,
				Ledger: strings.Join(record(l), ",")})
		}
	}
	sort.SliceStable(diffs, func(i, j int) bool {
		if (diffs[i].Line == 0) != (diffs[j].Line == 0) {
			return diffs[j].Line == 0
		}
		return diffs[i].Line < diffs[j].Line
	})
	if diffs == nil {
		diffs = []contract.ReconDifference{}
	}
	report.Differences, report.OK = diffs, len(diffs) == 0
	return report, nil
}

// parse reads a submitted file's lines; a line it cannot read is nil, with its difference.
func parse(body []byte, isJSON bool) ([]*contract.ReconLine, []contract.ReconDifference, error) {
	if isJSON {
		var f contract.ReconFile
		d := json.NewDecoder(bytes.NewReader(body))
		d.DisallowUnknownFields()
		if err := d.Decode(&f); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrBadFile, err)
		}
		out := make([]*contract.ReconLine, len(f.Lines))
		for i := range f.Lines {
			out[i] = &f.Lines[i]
		}
		return out, nil, nil
	}
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil || strings.Join(head, ",") != strings.Join(csvHeader, ",") {
		return nil, nil, fmt.Errorf("%w: the first line must be %s", ErrBadFile, strings.Join(csvHeader, ","))
	}
	var (
		out   []*contract.ReconLine
		diffs []contract.ReconDifference
	)
	for n := 1; ; n++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: line %d: %v", ErrBadFile, n, err)
		}
		amount, aerr := strconv.ParseInt(rec[min(6, len(rec)-1)], 10, 64)
		if len(rec) != len(csvHeader) || aerr != nil {
			out = append(out, nil)
			diffs = append(diffs, contract.ReconDifference{Kind: contract.ReconMalformed, Line: n, File: strings.Join(rec, ",")})
			continue
		}
		out = append(out, &contract.ReconLine{UPITxnID: rec[0], RRN: rec[1], Type: rec[2], Side: rec[3], PayerVPA: rec[4],
			PayeeVPA: rec[5], AmountPaise: amount, NPCICode: rec[7], Time: rec[8]})
	}
	return out, diffs, nil
}
