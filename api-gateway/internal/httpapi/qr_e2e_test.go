package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	qrreader "github.com/makiuchi-d/gozxing/qrcode"

	"upi/shared/contract"
	"upi/shared/contract/problem"
)

func qrOf(t *testing.T, res *result, status int) contract.QR {
	t.Helper()
	var q contract.QR
	if res.status != status || json.Unmarshal(res.body, &q) != nil || q.Intent == "" {
		t.Fatalf("qr answer %d %s, want %d", res.status, res.body, status)
	}
	return q
}

// decodeQR reads the link a PNG QR code carries.
func decodeQR(t *testing.T, png []byte) string {
	t.Helper()
	img, format, err := image.Decode(bytes.NewReader(png))
	if err != nil || format != "png" {
		t.Fatalf("not a PNG (%s): %v", format, err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	out, err := qrreader.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("decode the QR code: %v", err)
	}
	return out.GetText()
}

// TestE2EQRCodes: a merchant's static QR and a dynamic QR, each as its link and as a PNG that decodes back
// to the same link; the dynamic QR paid by intent from many payers at once completes exactly one payment,
// which carries the merchant's reference and is found by it; a second payment is 409, an expired QR 422;
// bad links are 400 naming the parameter, an unknown pa 404.
func TestE2EQRCodes(t *testing.T) {
	s := newUPIStack(t, map[string]string{"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0"})
	s.open(betaKey, "shop@okbank", "Kirana Store", `,"type":"ENTITY","mcc":"5411"`)
	s.open(betaKey, "friend@okbank", "Friend", "")
	const payers = 6
	for i := 0; i < payers; i++ {
		v := fmt.Sprintf("cust%d@okbank", i)
		s.open(alphaKey, v, "Customer", "")
		s.deposit(alphaKey, v, 100_000)
	}

	// The static QR: the merchant's link without amount or reference, as JSON and as a PNG.
	get := func(key, path, accept string) *result {
		return s.do(req{method: http.MethodGet, path: path, key: key, header: map[string]string{"Accept": accept}})
	}
	var static contract.QR
	for i := 0; i < 50; i++ { // the account's projection may lag its opening
		res := get(betaKey, "/v1/accounts/shop@okbank/qr", "application/json")
		if res.status == http.StatusOK {
			static = qrOf(t, res, http.StatusOK)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if static.Intent != "upi://pay?pa=shop%40okbank&pn=Kirana%20Store&mc=5411&cu=INR" || static.Status != contract.QRStatic {
		t.Fatalf("static qr %+v", static)
	}
	png := get(betaKey, "/v1/accounts/shop@okbank/qr", "image/png")
	if png.status != http.StatusOK || png.header.Get("Content-Type") != "image/png" || decodeQR(t, png.body) != static.Intent {
		t.Fatalf("static png: %d %s", png.status, png.header.Get("Content-Type"))
	}
	expect(t, get(alphaKey, "/v1/accounts/shop@okbank/qr", "application/json"), http.StatusNotFound, problem.CodeAccountNotFound)
	expect(t, get(betaKey, "/v1/accounts/friend@okbank/qr", "application/json"), http.StatusUnprocessableEntity, problem.CodeQRNotAllowed)

	// A dynamic QR for order 42: fixed amount, a note, an expiry.
	create := func(idem, ref, extra string) *result {
		return s.post(betaKey, "/v1/qr-codes", idem, fmt.Sprintf(`{"payee_vpa":"shop@okbank","merchant_reference":%q%s}`, ref, extra))
	}
	qr := qrOf(t, create("qr-42", "ORDER-42", `,"amount_paise":12550,"note":"Order 42","expires_in_seconds":600`), http.StatusCreated)
	if qr.Intent != "upi://pay?pa=shop%40okbank&pn=Kirana%20Store&mc=5411&tr=ORDER-42&tn=Order%2042&am=125.50&cu=INR" || qr.Status != contract.QRActive {
		t.Fatalf("dynamic qr %+v", qr)
	}
	again := qrOf(t, create("qr-42", "ORDER-42", `,"amount_paise":12550,"note":"Order 42","expires_in_seconds":600`), http.StatusCreated)
	if again.QRID != qr.QRID {
		t.Fatalf("replayed create gave another qr: %+v", again)
	}
	expect(t, create("qr-42-other", "ORDER-42", `,"amount_paise":100`), http.StatusConflict, problem.CodeQRReferenceExists)
	expect(t, s.post(alphaKey, "/v1/qr-codes", "qr-theft", `{"payee_vpa":"shop@okbank","merchant_reference":"X1","amount_paise":100}`), http.StatusNotFound, problem.CodeAccountNotFound)
	expect(t, create("qr-bad", "has space", ""), http.StatusBadRequest, problem.CodeValidation)

	var pngRes *result
	for i := 0; i < 50; i++ {
		if pngRes = get(betaKey, "/v1/qr-codes/"+qr.QRID, "image/png"); pngRes.status == http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if pngRes.status != http.StatusOK || decodeQR(t, pngRes.body) != qr.Intent {
		t.Fatalf("dynamic png: %d %s", pngRes.status, pngRes.body)
	}
	expect(t, get(alphaKey, "/v1/qr-codes/"+qr.QRID, "application/json"), http.StatusNotFound, problem.CodeQRNotFound)

	pay := func(payer, idem, link, extra string) *result {
		return s.post(alphaKey, "/v1/payments", idem, fmt.Sprintf(`{"payer_vpa":%q,"intent":%q%s}`, payer, link, extra))
	}
	// Links parsed strictly: 400 naming the parameter; an unknown payee 404.
	for link, field := range map[string]string{
		"upi://pay?pa=shop@okbank&am=1.5&cu=USD":     "intent.cu",
		"upi://pay?pa=shop@okbank&am=abc":            "intent.am",
		"upi://pay?pa=shop@okbank&am=-5":             "intent.am",
		"upi://pay?am=5":                             "intent.pa",
		"https://pay?pa=shop@okbank&am=5":            "intent",
		"upi://pay?pa=shop@okbank&am=5&bogus=1":      "intent.bogus",
		"upi://pay?pa=shop@okbank":                   "amount_paise",
		"upi://pay?pa=shop@okbank&am=5&tr=A&tr=B":    "intent.tr",
		"upi://pay?pa=shop@okbank&am=5&tr=ORDER-42%": "intent",
	} {
		res := pay("cust0@okbank", "bad-"+url.QueryEscape(link), link, "")
		expect(t, res, http.StatusBadRequest, problem.CodeValidation)
		if len(res.problem.Errors) == 0 || res.problem.Errors[0].Field != field {
			t.Errorf("%s: errors %+v, want the field %s", link, res.problem.Errors, field)
		}
	}
	expect(t, pay("cust0@okbank", "ghost", "upi://pay?pa=ghost@okbank&am=5.00&cu=INR", ""), http.StatusNotFound, problem.CodeVPANotFound)
	expect(t, pay("cust0@okbank", "wrong-am", "upi://pay?pa=shop@okbank&tr=ORDER-42&am=1.00", ""), http.StatusUnprocessableEntity, problem.CodeQRAmountMismatch)
	expect(t, pay("cust0@okbank", "no-qr", "upi://pay?pa=shop@okbank&tr=NOPE&am=1.00", ""), http.StatusNotFound, problem.CodeQRNotFound)

	// Paid by every payer at once: exactly one payment; the others 409.
	var wg sync.WaitGroup
	answers := make([]*result, payers)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = pay(fmt.Sprintf("cust%d@okbank", i), fmt.Sprintf("qr-pay-%d", i), qr.Intent, "")
		}()
	}
	wg.Wait()
	var paid []contract.Payment
	for _, a := range answers {
		switch a.status {
		case http.StatusAccepted:
			var p contract.Payment
			if json.Unmarshal(a.body, &p) != nil {
				t.Fatal(string(a.body))
			}
			paid = append(paid, p)
		case http.StatusConflict:
			expect(t, a, http.StatusConflict, problem.CodeQRAlreadyPaid)
		default:
			t.Fatalf("concurrent qr payment: %d %s", a.status, a.body)
		}
	}
	if len(paid) != 1 {
		t.Fatalf("%d payments of one dynamic QR, want 1", len(paid))
	}
	p := s.settled(alphaKey, paid[0].PaymentID)
	completed(t, p)
	if p.AmountPaise != 12550 || p.PayeeVPA != "shop@okbank" || p.MerchantReference != "ORDER-42" || p.Note != "Order 42" {
		t.Fatalf("qr payment %+v", p)
	}
	// Found by the merchant's reference, by the merchant too.
	res := s.do(req{method: http.MethodGet, path: "/v1/payments?merchant_reference=ORDER-42", key: betaKey})
	var list contract.PaymentList
	if res.status != http.StatusOK || json.Unmarshal(res.body, &list) != nil || len(list.Items) != 1 || list.Items[0].PaymentID != p.PaymentID {
		t.Fatalf("by reference: %d %s", res.status, res.body)
	}
	seen := qrOf(t, get(betaKey, "/v1/qr-codes/"+qr.QRID+"?min_position="+url.QueryEscape(p.Position), "application/json"), http.StatusOK)
	if seen.Status != contract.QRPaid || seen.PaymentID == nil || *seen.PaymentID != p.PaymentID {
		t.Fatalf("paid qr %+v", seen)
	}

	// A minimum-amount QR takes the payer's amount at or above it; a static link takes amount_paise.
	minQR := qrOf(t, create("qr-min", "DONATE-1", `,"min_amount_paise":1000,"expires_in_seconds":600`), http.StatusCreated)
	expect(t, pay("cust1@okbank", "min-low", minQR.Intent, `,"amount_paise":999`), http.StatusBadRequest, problem.CodeValidation)
	expect(t, pay("cust1@okbank", "min-ok", minQR.Intent, `,"amount_paise":5000`), http.StatusAccepted, "")
	expect(t, pay("cust1@okbank", "static", static.Intent, `,"amount_paise":700`), http.StatusAccepted, "")

	// Expired: 422.
	short := qrOf(t, create("qr-short", "ORDER-43", `,"amount_paise":100,"expires_in_seconds":60`), http.StatusCreated)
	expires, _ := time.Parse(time.RFC3339Nano, short.ExpiresAt)
	time.Sleep(time.Until(expires) + 50*time.Millisecond)
	expect(t, pay("cust2@okbank", "late", short.Intent, ""), http.StatusUnprocessableEntity, problem.CodeQRExpired)
}
