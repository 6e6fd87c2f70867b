package httpapi

import (
	"net/http"

	"upi/shared/contract"
	"upi/shared/contract/problem"
)

// erasure is the validator of POST /v1/ops/erasures (operators only): a body naming the account's VPA.
func erasure() validator {
	return body(func(req *contract.ErasureRequest, _ *http.Request) *problem.Problem {
		_, p := req.Validate()
		return p
	})
}
