// Package settlement is the settlement calendar: which cycle a moment belongs to. Every completed money
// movement belongs to the cycle in which its completing event was appended (docs/architecture.md,
// "Settlement cycles"); the "settlement" projection (adapters/postgres/projections) files each movement
// under its cycle and bank, and the closer (Closer) closes the cycles the log has left behind.
package settlement

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// DefaultCutOffs are NPCI's ten daily UPI settlement cut-offs, in IST (published by NPCI and reported in
// its circular of September 2025, unchanged in timing since 2021): cycle 1 runs 21:00 to midnight, cycle
// 2 midnight to 05:00, then two-hour cycles to 21:00. A cycle is named by its end's IST date and the
// end's rank among the cut-offs, so "2026-12-05-C01" is 21:00 on 4 December to 00:00 on 5 December.
const DefaultCutOffs = "00:00,05:00,07:00,09:00,11:00,13:00,15:00,17:00,19:00,21:00"

// IST is India Standard Time, UTC+05:30 with no daylight saving (fixed here so that no time-zone
// database is needed in the images).
var IST = time.FixedZone("IST", 5*3600+30*60)

// Cycle is one settlement cycle: the half-open interval [Start, End).
type Cycle struct {
	ID         string
	Start, End time.Time
}

// Schedule cuts time into cycles: either at fixed cut-offs of each IST day, or, when Length is set, in
// cycles of that length counted from the Unix epoch (for tests and drills: SETTLEMENT_CYCLE_LENGTH=2s).
type Schedule struct {
	Length  time.Duration
	cutOffs []time.Duration // since IST midnight, ascending, at least one
}

// ParseSchedule reads SETTLEMENT_CYCLES (comma-separated HH:MM cut-offs, IST) and SETTLEMENT_CYCLE_LENGTH
// (a duration; 0 for the cut-offs).
func ParseSchedule(cutOffs string, length time.Duration) (Schedule, error) {
	if length < 0 || (length > 0 && length < 100*time.Millisecond) {
		return Schedule{}, fmt.Errorf("SETTLEMENT_CYCLE_LENGTH must be 0 (use SETTLEMENT_CYCLES) or at least 100ms")
	}
	if length > 0 {
		return Schedule{Length: length}, nil
	}
	var s Schedule
	seen := map[time.Duration]bool{}
	for _, part := range strings.Split(cutOffs, ",") {
		t, err := time.Parse("15:04", strings.TrimSpace(part))
		if err != nil {
			return Schedule{}, fmt.Errorf("SETTLEMENT_CYCLES: %q is not a HH:MM cut-off", part)
		}
		d := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
		if seen[d] {
			return Schedule{}, fmt.Errorf("SETTLEMENT_CYCLES: %q appears twice", part)
		}
		seen[d] = true
		s.cutOffs = append(s.cutOffs, d)
	}
	sort.Slice(s.cutOffs, func(i, j int) bool { return s.cutOffs[i] < s.cutOffs[j] })
	return s, nil
}

// Default is NPCI's schedule (DefaultCutOffs).
func Default() Schedule {
	s, _ := ParseSchedule(DefaultCutOffs, 0)
	return s
}

// String describes the schedule for logs.
func (s Schedule) String() string {
	if s.Length > 0 {
		return "every " + s.Length.String()
	}
	parts := make([]string, len(s.cutOffs))
	for i, d := range s.cutOffs {
		parts[i] = fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60)
	}
	return strings.Join(parts, ",") + " IST"
}

// CycleOf is the cycle that holds instant t.
func (s Schedule) CycleOf(t time.Time) Cycle {
	if s.Length > 0 {
		start := time.Unix(0, 0).Add(t.Sub(time.Unix(0, 0)).Truncate(s.Length))
		if start.After(t) { // before the epoch, Truncate rounds towards it
			start = start.Add(-s.Length)
		}
		start = start.UTC()
		return Cycle{ID: start.Format("20060102T150405.000Z"), Start: start, End: start.Add(s.Length).UTC()}
	}
	local := t.In(IST)
	midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, IST)
	since := local.Sub(midnight)
	// The cycle ends at the first cut-off after t: today's, or tomorrow's first.
	for i, c := range s.cutOffs {
		if c > since {
			return s.cycleEnding(midnight, i)
		}
	}
	return s.cycleEnding(midnight.AddDate(0, 0, 1), 0)
}

// cycleEnding is the cycle that ends at cut-off i of the IST day that starts at midnight.
func (s Schedule) cycleEnding(midnight time.Time, i int) Cycle {
	end := midnight.Add(s.cutOffs[i])
	var start time.Time
	if i > 0 {
		start = midnight.Add(s.cutOffs[i-1])
	} else {
		start = midnight.AddDate(0, 0, -1).Add(s.cutOffs[len(s.cutOffs)-1])
	}
	return Cycle{ID: fmt.Sprintf("%s-C%02d", end.Format("2006-01-02"), i+1), Start: start.UTC(), End: end.UTC()}
}
