package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	qrcode "github.com/skip2/go-qrcode"

	"upi/api-gateway/internal/app"

	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// merchantCommands mounts the commands of QR codes and mandates on v1; merchantReads their reads on the
// rate-limited group.
func (s *server) merchantCommands(v1 chi.Router) {
	v1.Post("/qr-codes", s.command(s.createQR()))
	v1.Post("/mandates", s.command(s.requestMandate()))
	for _, action := range []string{"approve", "decline", "pause", "resume", "revoke"} {
		v1.Post("/mandates/{mandate_id}/"+action, s.command(noBody("mandate_id", problem.CodeMandateNotFound, "no such mandate")))
	}
	v1.Post("/mandates/{mandate_id}/notifications", s.command(s.notifyDebit()))
	v1.Post("/mandates/{mandate_id}/notifications/{notification_id}/approve",
		s.command(noBody("mandate_id", problem.CodeMandateNotFound, "no such mandate")))
}

// mandateFingerprint is a mandate request as the fingerprint sees it (strings and integers only).
type mandateFingerprint struct {
	PayerVPA    string `json:"payer_vpa"`
	PayeeVPA    string `json:"payee_vpa"`
	AmountPaise int64  `json:"amount_paise"`
	AmountRule  string `json:"amount_rule"`
	Frequency   string `json:"frequency"`
	ValidFrom   string `json:"valid_from"`
	ValidUntil  string `json:"valid_until"`
	Revocable   string `json:"revocable"`
	Purpose     string `json:"purpose"`
	ExpiresIn   int64  `json:"expires_in_seconds"`
}

func (s *server) requestMandate() validator {
	fp := app.NewFingerprinter[mandateFingerprint]()
	return func(w http.ResponseWriter, r *http.Request) (string, *problem.Problem) {
		var req contract.MandateRequestBody
		if p := httpjson.Decode(w, r, &req); p != nil {
			return "", p
		}
		if _, p := req.Validate(s.Limits); p != nil {
			return "", p
		}
		revocable := ""
		if req.Revocable != nil {
			revocable = fmt.Sprint(*req.Revocable)
		}
		return fp.Of(&mandateFingerprint{req.PayerVPA, req.PayeeVPA, req.AmountPaise, req.AmountRule, req.Frequency,
			req.ValidFrom, req.ValidUntil, revocable, req.Purpose, req.ExpiresInSeconds}), nil
	}
}

func (s *server) notifyDebit() validator {
	return body(func(req *contract.MandateNotifyBody, r *http.Request) *problem.Problem {
		_, p := req.Validate(chi.URLParam(r, "mandate_id"), s.Limits)
		return p
	})
}

// noBody is the validator of a decision on the resource whose id is the path parameter param: no body
// (or an empty object), an id that is a UUID (else 404 code).
func noBody(param, code, detail string) validator {
	empty := app.NewFingerprinter[struct{}]().Of(&struct{}{})
	return func(w http.ResponseWriter, r *http.Request) (string, *problem.Problem) {
		if _, err := uuid.Parse(chi.URLParam(r, param)); err != nil {
			return "", problem.New(http.StatusNotFound, code, detail)
		}
		raw, err := io.ReadAll(io.LimitReader(r.Body, contract.MaxBodyBytes+1))
		if err != nil {
			return "", problem.New(http.StatusBadRequest, problem.CodeMalformedJSON, "the body could not be read")
		}
		if len(bytes.TrimSpace(raw)) > 0 {
			var req struct{}
			r.Body = io.NopCloser(bytes.NewReader(raw))
			if p := httpjson.Decode(w, r, &req); p != nil {
				return "", p
			}
		}
		return empty, nil
	}
}

func (s *server) merchantReads(r chi.Router) {
	r.Get("/qr-codes/{qr_id}", s.getQR)
	r.Get("/accounts/{vpa}/qr", s.getStaticQR)
	r.Get("/mandates/{mandate_id}", s.getMandate)
	r.Get("/mandates/{mandate_id}/events", s.getMandate)
}

func (s *server) getMandate(w http.ResponseWriter, r *http.Request) {
	if _, err := uuid.Parse(chi.URLParam(r, "mandate_id")); err != nil {
		s.fail(w, r, problem.New(http.StatusNotFound, problem.CodeMandateNotFound, "no such mandate"))
		return
	}
	s.query(w, r, nil, queryParams{})
}

func (s *server) createQR() validator {
	return body(func(req *contract.QRRequest, _ *http.Request) *problem.Problem {
		_, p := req.Validate(s.Limits)
		return p
	})
}

func (s *server) getQR(w http.ResponseWriter, r *http.Request) {
	if _, err := uuid.Parse(chi.URLParam(r, "qr_id")); err != nil {
		s.fail(w, r, problem.New(http.StatusNotFound, problem.CodeQRNotFound, "no such QR code"))
		return
	}
	s.qrRead(w, r, nil)
}

func (s *server) getStaticQR(w http.ResponseWriter, r *http.Request) {
	s.qrRead(w, r, checkVPA(r))
}

// qrPixels is the size of a QR code's PNG.
const qrPixels = 512

// qrRead relays a QR read as JSON, or, when the client accepts image/png, as the PNG of the QR code
// carrying the answer's intent link (made here, at the edge: the QR is only a picture of the link).
func (s *server) qrRead(w http.ResponseWriter, r *http.Request, pathErrs []problem.FieldError) {
	if !acceptsPNG(r.Header.Get("Accept")) {
		s.query(w, r, pathErrs, queryParams{})
		return
	}
	buf := &bufferedResponse{header: http.Header{}}
	s.query(buf, r, pathErrs, queryParams{})
	var qr contract.QR
	if buf.status != http.StatusOK || json.Unmarshal(buf.body.Bytes(), &qr) != nil || qr.Intent == "" {
		buf.copyTo(w)
		return
	}
	png, err := qrcode.Encode(qr.Intent, qrcode.Medium, qrPixels)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for k, v := range buf.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "image/png")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(png)
}

// acceptsPNG reports whether an Accept header names image/png (or image/*) before any JSON type.
func acceptsPNG(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch mt {
		case "image/png", "image/*":
			return true
		case "application/json", "application/problem+json":
			return false
		}
	}
	return false
}

// bufferedResponse holds an answer so that it can be turned into another before it is sent.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) copyTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}
