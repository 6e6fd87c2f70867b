package contract

import (
	"strconv"
	"time"
)

// The rules of the public reads' query parameters. The gateway checks them at the edge and the query
// service reads them again, with these same functions, so the two cannot disagree on what a valid read is.

// Page sizes of the paginated lists (?limit=).
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 200
)

// MaxWait is the longest long-poll a client may ask for (?wait=).
const MaxWait = 30 * time.Second

// ParsePageLimit reads ?limit=: a whole number from 1 to MaxPageLimit.
func ParsePageLimit(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 1 && n <= MaxPageLimit
}

// ParseWait reads ?wait= as a Go duration ("5s", "1500ms") or whole seconds ("5"), from 0 to MaxWait.
func ParseWait(s string) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.Atoi(s)
		if nerr != nil || n < 0 || n > int(MaxWait/time.Second) {
			return 0, false
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 || d > MaxWait {
		return 0, false
	}
	return d, true
}

// IsRRN reports whether s has the form of an RRN (?rrn=): 12 digits.
func IsRRN(s string) bool { return isDigits(s, 12) }

// IsCollectStatus reports whether s is a collect request's status (?status=).
func IsCollectStatus(s string) bool {
	switch s {
	case CollectPending, CollectApproved, CollectDeclined, CollectExpired:
		return true
	}
	return false
}
