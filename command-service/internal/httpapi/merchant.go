package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"upi/shared/contract"
	"upi/shared/contract/problem"
)

// registerMerchant mounts the commands of QR codes and mandates.
func registerMerchant(r chi.Router, h *handlers, m metrics) {
	r.With(m.instrument("create_qr")).Post(contract.PathQRCodes, h.createQR())
}

func (h *handlers) createQR() http.HandlerFunc {
	return clientCommand(h, http.StatusCreated,
		func(_ *http.Request, req contract.QRRequest) (contract.CreateQR, *problem.Problem) {
			return req.Validate(h.limits)
		},
		h.svc.CreateQR,
		func(q contract.QR) string { return contract.PathQRCodes + "/" + q.QRID })
}
