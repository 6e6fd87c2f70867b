// Package intent reads and writes UPI intent links, the `upi://pay?...` strings that QR codes carry and
// payment apps open. Parsing is strict: every error names the parameter at fault, so a client can be told
// exactly what is wrong with the link it sent.
package intent

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"upi/shared/contract/vpa"
)

// Currency is the only currency an intent may name.
const Currency = "INR"

// Intent is a parsed upi://pay link.
type Intent struct {
	PayeeVPA vpa.VPA // pa
	Name     string  // pn, the payee's name
	MCC      string  // mc, the merchant category code
	Ref      string  // tr, the merchant's reference (dynamic QRs)
	Note     string  // tn
	// AmountPaise is am (0 when absent); MinPaise is mam (0 when absent).
	AmountPaise int64
	MinPaise    int64
}

// Error is a parse failure of one parameter.
type Error struct {
	Param   string
	Message string
}

func (e *Error) Error() string { return e.Param + ": " + e.Message }

// ErrMalformed is wrapped by every parse failure.
var ErrMalformed = errors.New("malformed intent")

func (e *Error) Unwrap() error { return ErrMalformed }

// MaxLen bounds an intent string.
const MaxLen = 1024

// known are the parameters of NPCI's linking specification that an intent may carry. Those not used
// here (mode, orgid, ...) are accepted and ignored, as a payer app would; anything else is refused.
var known = map[string]bool{
	"pa": true, "pn": true, "mc": true, "tr": true, "tn": true, "am": true, "mam": true, "cu": true,
	"tid": true, "url": true, "mode": true, "orgid": true, "purpose": true, "sign": true, "qrmedium": true,
	"refurl": true, "mid": true, "msid": true, "mtid": true,
}

var (
	amountRe = regexp.MustCompile(`^[0-9]{1,9}(\.[0-9]{1,2})?$`)
	mccRe    = regexp.MustCompile(`^[0-9]{4}$`)
	refRe    = regexp.MustCompile(`^[A-Za-z0-9._\-]{1,35}$`)
)

// Parse reads s strictly: the scheme upi and the action pay, no parameter twice, pa a valid VPA, cu INR
// when present, am and mam positive rupee amounts with at most two decimals, mc four digits, tr 1 to 35
// letters, digits, dots, dashes or underscores, pn and tn at most 100 printable characters.
func Parse(s string) (Intent, error) {
	var in Intent
	if len(s) > MaxLen {
		return in, &Error{"intent", fmt.Sprintf("longer than %d characters", MaxLen)}
	}
	u, err := url.Parse(s)
	if err != nil || !strings.EqualFold(u.Scheme, "upi") || u.Opaque != "" && !strings.EqualFold(u.Opaque, "pay") ||
		u.Opaque == "" && (!strings.EqualFold(u.Host, "pay") || (u.Path != "" && u.Path != "/")) || u.Fragment != "" {
		return in, &Error{"intent", "must be a upi://pay?... link"}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return in, &Error{"intent", "the query string is not valid URL encoding"}
	}
	for k, v := range q {
		if !known[strings.ToLower(k)] {
			return in, &Error{k, "unknown parameter"}
		}
		if len(v) > 1 {
			return in, &Error{k, "given more than once"}
		}
	}
	get := func(k string) (string, bool) {
		for key, v := range q {
			if strings.EqualFold(key, k) {
				return v[0], true
			}
		}
		return "", false
	}
	pa, ok := get("pa")
	if !ok {
		return in, &Error{"pa", "required"}
	}
	if in.PayeeVPA, err = vpa.Parse(pa); err != nil {
		return in, &Error{"pa", err.Error()}
	}
	if cu, ok := get("cu"); ok && cu != Currency {
		return in, &Error{"cu", "must be INR"}
	}
	if v, ok := get("am"); ok {
		if in.AmountPaise, err = ParseRupees(v); err != nil {
			return in, &Error{"am", err.Error()}
		}
	}
	if v, ok := get("mam"); ok {
		if in.MinPaise, err = ParseRupees(v); err != nil {
			return in, &Error{"mam", err.Error()}
		}
		if in.AmountPaise > 0 && in.AmountPaise < in.MinPaise {
			return in, &Error{"am", "below mam"}
		}
	}
	if v, ok := get("mc"); ok {
		if !mccRe.MatchString(v) {
			return in, &Error{"mc", "must be 4 digits"}
		}
		in.MCC = v
	}
	if v, ok := get("tr"); ok {
		if !refRe.MatchString(v) {
			return in, &Error{"tr", "must be 1 to 35 letters, digits, '.', '-' or '_'"}
		}
		in.Ref = v
	}
	for _, p := range []struct {
		k   string
		dst *string
	}{{"pn", &in.Name}, {"tn", &in.Note}} {
		if v, ok := get(p.k); ok {
			if !printable(v, 100) {
				return in, &Error{p.k, "must be 1 to 100 printable characters"}
			}
			*p.dst = v
		}
	}
	return in, nil
}

// ParseRupees reads a rupee amount such as "125" or "125.50" into paise: positive, at most two decimals.
func ParseRupees(s string) (int64, error) {
	if !amountRe.MatchString(s) {
		return 0, errors.New("must be a positive amount in rupees with at most two decimals, such as 125.50")
	}
	whole, frac, _ := strings.Cut(s, ".")
	r, _ := strconv.ParseInt(whole, 10, 64)
	for len(frac) < 2 {
		frac += "0"
	}
	p, _ := strconv.ParseInt(frac, 10, 64)
	paise := r*100 + p
	if paise <= 0 {
		return 0, errors.New("must be more than zero")
	}
	return paise, nil
}

// Rupees writes paise as a rupee amount with two decimals.
func Rupees(paise int64) string { return fmt.Sprintf("%d.%02d", paise/100, paise%100) }

// String writes the intent as a upi://pay link, its parameters in a fixed order.
func (in Intent) String() string {
	var b strings.Builder
	b.WriteString("upi://pay?pa=")
	b.WriteString(url.QueryEscape(in.PayeeVPA.String()))
	add := func(k, v string) {
		if v != "" {
			b.WriteString("&" + k + "=" + strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
		}
	}
	add("pn", in.Name)
	add("mc", in.MCC)
	add("tr", in.Ref)
	add("tn", in.Note)
	if in.AmountPaise > 0 {
		add("am", Rupees(in.AmountPaise))
	}
	if in.MinPaise > 0 {
		add("mam", Rupees(in.MinPaise))
	}
	add("cu", Currency)
	return b.String()
}

func printable(s string, max int) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
