package app

import "errors"

// ErrAccountClosed: the account was erased (POST /v1/ops/erasures) and is closed for good; a lookup of its
// VPA says so (410 ACCOUNT_CLOSED) rather than showing a payee.
var ErrAccountClosed = errors.New("the account was erased and is closed")
