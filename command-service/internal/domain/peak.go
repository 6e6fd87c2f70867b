package domain

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// IST is India Standard Time (UTC+05:30, no daylight saving), the clock of UPI's windows and dates.
var IST = time.FixedZone("IST", 5*3600+30*60)

// PeakWindow is a daily window of IST time, minutes from midnight, [Start, End).
type PeakWindow struct{ Start, End int }

// PeakWindows are the daily windows in which mandate debits do not run (MANDATE_PEAK_WINDOWS).
type PeakWindows []PeakWindow

// DefaultPeakWindows: 10:00-13:00 and 17:00-21:30 IST.
var DefaultPeakWindows = PeakWindows{{10 * 60, 13 * 60}, {17 * 60, 21*60 + 30}}

// ParsePeakWindows reads "HH:MM-HH:MM,HH:MM-HH:MM" (IST); "" or "none" is no window.
func ParsePeakWindows(s string) (PeakWindows, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "none") {
		return PeakWindows{}, nil
	}
	var out PeakWindows
	for _, part := range strings.Split(s, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(part), "-")
		a, err1 := clockMinutes(from)
		b, err2 := clockMinutes(to)
		if !ok || err1 != nil || err2 != nil || b <= a {
			return nil, fmt.Errorf("peak window %q: want HH:MM-HH:MM with the end after the start", part)
		}
		out = append(out, PeakWindow{a, b})
	}
	return out, nil
}

func clockMinutes(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh*60+mm > 24*60 {
		return 0, fmt.Errorf("bad time %q", s)
	}
	return hh*60 + mm, nil
}

// After is t, or, when t falls inside a window, that window's end (and past any window that starts right
// there): the first moment at or after t outside every window.
func (w PeakWindows) After(t time.Time) time.Time {
	for moved := true; moved; {
		moved = false
		local := t.In(IST)
		midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, IST)
		mins := local.Sub(midnight)
		for _, win := range w {
			start, end := time.Duration(win.Start)*time.Minute, time.Duration(win.End)*time.Minute
			if mins >= start && mins < end {
				t, moved = midnight.Add(end), true
				break
			}
		}
	}
	return t
}
