package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"upi/command-service/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/contract/vpa"
	"upi/shared/platform/servicetoken"
)

// registerErasures mounts POST /v1/ops/erasures: operators only. The operator is the one the gateway's
// service token names (the token check sets X-Operator-ID from it and deletes any the caller sent).
func registerErasures(r chi.Router, h *handlers, m metrics) {
	r.With(m.instrument("erase_account"), requireOperator).Post(contract.PathErasures, h.eraseAccount())
}

func requireOperator(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimSpace(r.Header.Get(servicetoken.HeaderOperatorID)) == "" {
			problem.Write(w, problem.New(http.StatusForbidden, problem.CodeForbidden, "an operator route"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// eraseAccount answers 200 with the erasure, the same for a repeat (under any key).
func (h *handlers) eraseAccount() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		operator := strings.TrimSpace(r.Header.Get(servicetoken.HeaderOperatorID))
		clientCommand(h, http.StatusOK,
			func(_ *http.Request, req contract.ErasureRequest) (vpa.VPA, *problem.Problem) { return req.Validate() },
			func(ctx context.Context, c app.Caller, v vpa.VPA) (contract.Erasure, bool, error) {
				return h.svc.EraseAccount(ctx, c, operator, v)
			}, nil)(w, r)
	}
}
