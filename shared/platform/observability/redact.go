package observability

import "net/url"

// RedactURL hides the password of a connection URL, for logging configuration.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
