// Package httpjson reads JSON request bodies strictly and writes JSON responses, the same way in every
// service: a body that cannot be read is a 4xx problem, never a 500.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"upi/shared/contract"
	"upi/shared/contract/problem"
)

// Decode reads a JSON request body into v strictly: application/json only, at most MaxBodyBytes, one
// object, no unknown fields, the right JSON types. Every failure is a 4xx problem, never a 500.
func Decode(w http.ResponseWriter, r *http.Request, v any) *problem.Problem {
	return DecodeLimited(w, r, v, contract.MaxBodyBytes)
}

// DecodeLimited is Decode with a body limit of its own, for internal routes whose bodies are batches.
func DecodeLimited(w http.ResponseWriter, r *http.Request, v any, limit int64) *problem.Problem {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return problem.New(http.StatusUnsupportedMediaType, problem.CodeUnsupportedMediaType,
				"Content-Type must be application/json")
		}
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeProblem(err)
		}
		return problem.New(http.StatusBadRequest, problem.CodeMalformedJSON, "the body must be a single JSON object")
	}
	return nil
}

func decodeProblem(err error) *problem.Problem {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return problem.New(http.StatusRequestEntityTooLarge, problem.CodeBodyTooLarge,
			fmt.Sprintf("the body must be at most %d bytes", tooLarge.Limit))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return problem.New(http.StatusBadRequest, problem.CodeMalformedJSON, "the body must be a JSON object")
		}
		return problem.Validation(problem.FieldError{Field: field,
			Message: fmt.Sprintf("%s must be a JSON %s", field, jsonKind(typ.Type.Kind().String()))})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return problem.Validation(problem.FieldError{Field: field, Message: "unknown field"})
	case errors.As(err, &syntax), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return problem.New(http.StatusBadRequest, problem.CodeMalformedJSON, "the body is not valid JSON")
	default:
		return problem.New(http.StatusBadRequest, problem.CodeMalformedJSON, "the body could not be read as JSON")
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int64", "int", "int32":
		return "integer"
	case "string":
		return "string"
	default:
		return "value of the documented type"
	}
}

// Write sends v as a JSON response with status.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
