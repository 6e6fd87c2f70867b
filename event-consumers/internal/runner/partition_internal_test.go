package runner

import (
	"context"
	"strconv"
	"testing"

	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// The partition that owns a key must be the same in every process and every version: these values are
// FNV-1a (64 bits) modulo N, worked out independently of this code. A change here moves events between
// partitions of a running layout, which would apply some twice and skip others.
func TestPartitionOfNeverChanges(t *testing.T) {
	for _, c := range []struct {
		key  string
		want [4]int // of 2, 3, 4 and 16
	}{
		{"", [4]int{1, 2, 1, 5}},
		{"a", [4]int{0, 1, 0, 12}},
		{"user1@okbank", [4]int{1, 1, 3, 7}},
		{"9b2f4c1e-0d7a-4f5e-8a51-3c6d2b7e9f10", [4]int{0, 0, 0, 12}},
		{"settlement:okbank:03", [4]int{1, 0, 3, 7}},
	} {
		for i, n := range []int{2, 3, 4, 16} {
			if got := PartitionOf(c.key, n); got != c.want[i] {
				t.Errorf("PartitionOf(%q, %d) = %d, want %d", c.key, n, got, c.want[i])
			}
		}
	}
}

// The token NAME's notification carries is computed in SQL (syncNameSQL): it must be the token clients
// and the query service know (eventstore.Position.Token).
func TestPositionTokenInSQLIsTheToken(t *testing.T) {
	pool, _ := testenv.PostgresPool(t)
	for _, p := range []eventstore.Position{{}, {TxID: 1, GlobalPosition: 1}, {TxID: 4294967297, GlobalPosition: 123456789},
		{TxID: 1<<62 + 12345, GlobalPosition: 1<<62 + 6789}} {
		var got string
		if err := pool.QueryRow(context.Background(), `select `+positionToken("$1::text::xid8", "$2::bigint"),
			strconv.FormatUint(p.TxID, 10), p.GlobalPosition).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != p.Token() {
			t.Errorf("token of %d/%d in SQL %q, want %q", p.TxID, p.GlobalPosition, got, p.Token())
		}
	}
}
