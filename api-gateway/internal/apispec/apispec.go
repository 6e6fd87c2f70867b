// Package apispec reads docs/openapi.yaml so that tests can hold the gateway to the published contract:
// the routes it serves, and the status and error code of every answer it gives.
package apispec

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"upi/testenv"
)

// Spec is the part of an OpenAPI document the tests check against.
type Spec struct {
	Paths      map[string]map[string]Operation `yaml:"paths"`
	RouteErrs  map[string][]string             `yaml:"x-route-errors"`
	Components struct {
		Responses map[string]Response `yaml:"responses"`
		Schemas   map[string]Schema   `yaml:"schemas"`
	} `yaml:"components"`
}

// Schema is the part of a component schema the tests check: its enum, or its properties and which of them
// are required.
type Schema struct {
	Enum       []string       `yaml:"enum"`
	Properties map[string]any `yaml:"properties"`
	Required   []string       `yaml:"required"`
}

// Operation is one method of one path.
type Operation struct {
	Responses map[string]Response `yaml:"responses"`
}

// Response is one documented response, possibly a reference to a shared one.
type Response struct {
	Ref   string   `yaml:"$ref"`
	Codes []string `yaml:"x-codes"`
}

// Load reads docs/openapi.yaml from the repository holding the working directory.
func Load() (*Spec, error) {
	dir, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "docs", "openapi.yaml"))
	if err != nil {
		return nil, err
	}
	var s Spec
	if err := yaml.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse openapi.yaml: %w", err)
	}
	return &s, nil
}

// Routes lists "METHOD /path" for every operation.
func (s *Spec) Routes() []string {
	var out []string
	for path, ops := range s.Paths {
		for method := range ops {
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// resolve follows a response's $ref into components.responses.
func (s *Spec) resolve(r Response) Response {
	if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
		return s.Components.Responses[name]
	}
	return r
}

// Codes lists the error codes documented for a route's status.
func (s *Spec) Codes(method, path string, status int) ([]string, bool) {
	op, ok := s.Paths[path][strings.ToLower(method)]
	if !ok {
		return nil, false
	}
	r, ok := op.Responses[strconv.Itoa(status)]
	if !ok {
		return nil, false
	}
	return s.resolve(r).Codes, true
}

// Documented reports whether an answer is in the contract: for a matched route, its status is documented
// and, for an error, so is its code; for a method and path with no operation, x-route-errors (404, 405,
// and the 401 and 429 that every /v1 path can answer before routing).
func (s *Spec) Documented(method, path string, status int, code string) error {
	if _, ok := s.Paths[path][strings.ToLower(method)]; !ok {
		if slices.Contains(s.RouteErrs[strconv.Itoa(status)], code) {
			return nil
		}
		return fmt.Errorf("%s %q (no such operation) %d %s is not in x-route-errors", method, path, status, code)
	}
	codes, ok := s.Codes(method, path, status)
	if !ok {
		return fmt.Errorf("%s %s: status %d is not documented", method, path, status)
	}
	if code != "" && !slices.Contains(codes, code) {
		return fmt.Errorf("%s %s: status %d code %q is not documented (documented: %v)", method, path, status, code, codes)
	}
	return nil
}

// AllCodes is every code the document mentions in an x-codes list or x-route-errors.
func (s *Spec) AllCodes() []string {
	var out []string
	add := func(codes []string) {
		for _, c := range codes {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	for _, ops := range s.Paths {
		for _, op := range ops {
			for _, r := range op.Responses {
				add(s.resolve(r).Codes)
			}
		}
	}
	for _, codes := range s.RouteErrs {
		add(codes)
	}
	slices.Sort(out)
	return out
}

// Enum is the enum of a named schema.
func (s *Spec) Enum(schema string) []string {
	return s.Components.Schemas[schema].Enum
}

// Properties lists the property names of a named schema, sorted, and whether the schema exists.
func (s *Spec) Properties(schema string) ([]string, bool) {
	sc, ok := s.Components.Schemas[schema]
	out := make([]string, 0, len(sc.Properties))
	for name := range sc.Properties {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, ok
}
