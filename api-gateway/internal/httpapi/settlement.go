package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/go-chi/chi/v5"

	"upi/api-gateway/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/observability"
)

// maxReconFile bounds a bank's reconciliation file sent for checking: a cycle's file is larger than the
// 64 KiB of a command.
const maxReconFile = 8 << 20

var (
	settlementCycle = regexp.MustCompile(`^[0-9A-Za-z.:-]{1,40}$`)
	settlementBank  = regexp.MustCompile(`^[a-z0-9]{1,64}$`)
)

// settlementPath checks a settlement route's {cycle} and {bank} and returns the path to forward.
func settlementPath(r *http.Request) (string, *problem.Problem) {
	if c := chi.URLParam(r, "cycle"); c != "" && !settlementCycle.MatchString(c) {
		return "", problem.New(http.StatusNotFound, problem.CodeCycleNotFound, "no such settlement cycle")
	}
	if b := chi.URLParam(r, "bank"); r.URL.Path != "" && strings.Contains(r.URL.Path, "/banks/") && !settlementBank.MatchString(b) {
		return "", problem.Validation(problem.FieldError{Field: "bank", Message: "a bank is a VPA handle: lower-case letters and digits"})
	}
	return strings.TrimPrefix(r.URL.Path, "/v1"), nil
}

// settlementRead is GET /v1/ops/settlement/cycles and /v1/ops/settlement/cycles/{cycle}, for operators.
func (s *server) settlementRead(w http.ResponseWriter, r *http.Request) {
	path, p := settlementPath(r)
	if p != nil {
		s.fail(w, r, p)
		return
	}
	s.forwardOps(w, r, path)
}

// settlementFile is a bank's reconciliation file: JSON, or CSV with ?format=csv or Accept: text/csv.
func (s *server) settlementFile(w http.ResponseWriter, r *http.Request) {
	path, p := settlementPath(r)
	if p != nil {
		s.fail(w, r, p)
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	format := q.Get("format")
	if err != nil || (format != "" && format != "csv" && format != "json") {
		s.fail(w, r, problem.Validation(problem.FieldError{Field: "format", Message: "format must be csv or json"}))
		return
	}
	if format == "" {
		format = "json"
		if acceptsCSV(r.Header.Get("Accept")) {
			format = "csv"
		}
	}
	s.forwardOps(w, r, path+"?format="+format)
}

// acceptsCSV reports whether an Accept header prefers text/csv to JSON (it names text/csv, not after JSON).
func acceptsCSV(accept string) bool {
	csv, json := -1, -1
	for i, part := range strings.Split(accept, ",") {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		switch mt {
		case "text/csv":
			if csv < 0 {
				csv = i
			}
		case "application/json":
			if json < 0 {
				json = i
			}
		}
	}
	return csv >= 0 && (json < 0 || csv < json)
}

func (s *server) forwardOps(w http.ResponseWriter, r *http.Request, path string) {
	resp, err := s.App.Query(r.Context(), app.Query{Operator: operatorName(r.Context()),
		RequestID: observability.RequestID(r.Context()), Path: path})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	relay(w, resp)
}

// reconcile is POST /v1/ops/settlement/cycles/{cycle}/banks/{bank}/reconciliation: a bank's file (text/csv
// or application/json) checked against the ledger, through the idempotent flow of every POST (scoped to
// the operator). It changes nothing, so its answer is the same however often it is sent.
func (s *server) reconcile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	release, ok := s.App.Admit()
	if !ok {
		s.fail(w, r, app.ErrOverloaded)
		return
	}
	defer release()
	path, p := settlementPath(r)
	key := r.Header.Get(contract.HeaderIdempotencyKey)
	if p == nil {
		if err := contract.CheckIdempotencyKey(key); err != nil {
			p = problem.New(http.StatusBadRequest, problem.CodeIdempotencyKeyRequired, err.Error())
		}
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if p == nil && mt != "text/csv" && mt != "application/json" {
		p = problem.New(http.StatusUnsupportedMediaType, problem.CodeUnsupportedMediaType, "send the file as text/csv or application/json")
	}
	var body []byte
	if p == nil {
		var err error
		if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxReconFile)); err != nil {
			p = problem.New(http.StatusRequestEntityTooLarge, problem.CodeBodyTooLarge, "the file is larger than 8 MiB")
		}
	}
	if p != nil {
		if s.allow(w, r) {
			s.fail(w, r, p)
		}
		return
	}
	sum := sha256.Sum256(append([]byte(mt+"\n"), body...))
	operator := operatorName(ctx)
	rate, answer, err := s.App.Command(ctx, app.Command{
		Operator: operator, RequestID: observability.RequestID(ctx), Method: r.Method, Path: path, Key: key,
		Fingerprint: hex.EncodeToString(sum[:]), Body: body, ContentType: mt, Reconcile: true,
	})
	switch {
	case !s.rated(w, rate, s.metrics.rateLimitedBy("operator/"+operator)):
	case err != nil:
		s.fail(w, r, err)
	case answer.Replay != nil:
		replay(w, answer.Replay)
	default:
		relay(w, answer.Response)
	}
}
