package eventstore

// The stress test writes some of its events inside transactions it opens itself, so that it can delay
// and roll them back; it appends them with the store's own lock and insert rather than a copy of them.
var (
	LockStream   = lockStream
	InsertEvents = insert
)
