package contract

// PathCommandBatch is the command service's route for the gateway's batches: one POST carries client
// commands that arrived at the gateway together, each answered on its own (docs/internal-api.md).
const PathCommandBatch = "/internal/commands"

// Bounds of a command batch: its items, and its body (each item's body is at most MaxBodyBytes).
const (
	MaxBatchItems = 256
	MaxBatchBytes = 8 << 20
)

// BatchRequest is a batch of client commands, in the order they were queued.
type BatchRequest struct {
	Items []BatchItem `json:"items"`
}

// BatchItem is one client command of a batch: what its own request would have carried. The batch's service
// token binds the whole body, and so every item's client or operator.
type BatchItem struct {
	// Method and Path are the command's route (a POST under /v1/), Path as it would be sent (escaped).
	Method string `json:"method"`
	Path   string `json:"path"`
	// Client is the authenticated client (X-Client-ID), or Operator the authenticated operator of a
	// /v1/ops/ command (X-Operator-ID).
	Client   string `json:"client,omitempty"`
	Operator string `json:"operator,omitempty"`
	// IdempotencyKey, RequestID and TraceParent are the command's Idempotency-Key, X-Request-ID and W3C
	// traceparent.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	RequestID      string `json:"request_id,omitempty"`
	TraceParent    string `json:"traceparent,omitempty"`
	// ContentType is the body's type when it is not JSON.
	ContentType string `json:"content_type,omitempty"`
	// Body is the body as the client sent it (base64 in JSON: relayed byte for byte).
	Body []byte `json:"body,omitempty"`
}

// BatchResponse answers a batch: one result per item, in order.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}

// BatchResult is one item's answer, as its own request would have had it.
type BatchResult struct {
	Status int `json:"status"`
	// Header holds the answer's headers among BatchHeaders.
	Header map[string]string `json:"header,omitempty"`
	// Body is the answer's body, byte for byte (base64 in JSON).
	Body []byte `json:"body"`
}

// BatchHeaders are the headers of an item's answer that a batch carries back: those the gateway relays.
var BatchHeaders = []string{"Content-Type", "Location", "Retry-After", "Cache-Control", HeaderIdempotentReplayed}
