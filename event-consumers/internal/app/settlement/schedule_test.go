package settlement_test

import (
	"testing"
	"time"

	"upi/event-consumers/internal/app/settlement"
)

func TestNPCIScheduleNamesEachMomentsCycle(t *testing.T) {
	s := settlement.Default()
	at := func(v string) time.Time {
		t.Helper()
		tm, err := time.ParseInLocation("2006-01-02 15:04:05", v, settlement.IST)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	cases := []struct{ at, id, start, end string }{
		{"2026-12-04 21:00:00", "2026-12-05-C01", "2026-12-04 21:00:00", "2026-12-05 00:00:00"},
		{"2026-12-04 23:59:59", "2026-12-05-C01", "2026-12-04 21:00:00", "2026-12-05 00:00:00"},
		{"2026-12-05 00:00:00", "2026-12-05-C02", "2026-12-05 00:00:00", "2026-12-05 05:00:00"},
		{"2026-12-05 06:59:59", "2026-12-05-C03", "2026-12-05 05:00:00", "2026-12-05 07:00:00"},
		{"2026-12-05 20:59:59", "2026-12-05-C10", "2026-12-05 19:00:00", "2026-12-05 21:00:00"},
	}
	for _, c := range cases {
		got := s.CycleOf(at(c.at))
		if got.ID != c.id || !got.Start.Equal(at(c.start)) || !got.End.Equal(at(c.end)) {
			t.Errorf("%s: %+v, want %s [%s, %s)", c.at, got, c.id, c.start, c.end)
		}
	}
}

func TestCyclesOfALengthTileTime(t *testing.T) {
	s, err := settlement.ParseSchedule("", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 5, 10, 0, 1, 500e6, time.UTC)
	c := s.CycleOf(t0)
	if c.ID != "20261205T100000.000Z" || c.End.Sub(c.Start) != 2*time.Second {
		t.Fatalf("%+v", c)
	}
	if n := s.CycleOf(c.End); n.Start != c.End {
		t.Fatalf("next cycle %+v does not start at %s", n, c.End)
	}
	if _, err := settlement.ParseSchedule("25:00", 0); err == nil {
		t.Fatal("a cut-off of 25:00 was accepted")
	}
}
