package money

import (
	"errors"
	"testing"
)

func TestNewAmount(t *testing.T) {
	for _, tc := range []struct {
		paise   int64
		max     Paise
		wantErr error
	}{
		{1, 100, nil},
		{100, 100, nil},
		{101, 100, ErrTooLarge},
		{0, 100, ErrNotPositive},
		{-5, 100, ErrNotPositive},
		{1 << 62, 0, nil},
	} {
		a, err := NewAmount(tc.paise, tc.max)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("NewAmount(%d, %d) error = %v, want %v", tc.paise, tc.max, err, tc.wantErr)
		}
		if err == nil && int64(a.Paise()) != tc.paise {
			t.Errorf("NewAmount(%d) = %d", tc.paise, a.Paise())
		}
	}
}
