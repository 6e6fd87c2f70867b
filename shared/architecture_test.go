// Package architecture_test keeps the import direction of the whole workspace (docs/architecture.md and
// the inner shape of a service: domain <- app <- adapters, app <- httpapi; no service imports another;
// nothing but tests imports upi/testenv). It lists every package of every module in go.work with
// `go list` and reports each import that points the wrong way, naming the rule it breaks. It sits at the
// root of the shared module only so that `make test` runs it; it imports nothing of the workspace.
package architecture_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	contract = "upi/shared/contract"
	platform = "upi/shared/platform"
	testenv  = "upi/testenv"
	// testcontainers is what upi/testenv starts databases with when no TEST_*_URL is set.
	testcontainers = "github.com/testcontainers"
)

// pkg is the part of `go list -json` the rules read.
type pkg struct {
	ImportPath   string
	Name         string
	Module       *struct{ Path string }
	Imports      []string // of the package's own files
	TestImports  []string // of its _test.go files in the same package
	XTestImports []string // of its external _test package
	Deps         []string // every package the non-test package needs, transitively
	Error        *struct{ Err string }
}

// workspace is every package of every module in go.work.
type workspace struct {
	modules  []string // module paths
	services []string // module paths of the modules whose root package is a command
	pkgs     []pkg
	// testOnly holds the test helper packages (relaytest, say): imported by tests, and otherwise only by
	// other test helper packages.
	testOnly map[string]bool
}

// rule is one import rule: for each package it applies to, the imports (or dependencies) it forbids.
type rule struct {
	name string
	// why is printed with every violation, so that a failure says what to do instead.
	why       string
	appliesTo func(w *workspace, p pkg) bool
	// checked picks what the rule looks at: the package's imports, its test imports, or its dependencies.
	checked func(p pkg) []string
	forbids func(w *workspace, p pkg, imported string) bool
}

func TestImportDirection(t *testing.T) {
	w := loadWorkspace(t)
	for _, r := range rules() {
		t.Run(r.name, func(t *testing.T) {
			checkedPackages := 0
			for _, p := range w.pkgs {
				if !r.appliesTo(w, p) {
					continue
				}
				checkedPackages++
				for _, imported := range r.checked(p) {
					if r.forbids(w, p, imported) {
						t.Errorf("%s -> %s\n\t%s", p.ImportPath, imported, r.why)
					}
				}
			}
			// A rule whose path pattern matches nothing can never fail: the layout changed under it.
			if checkedPackages == 0 {
				t.Errorf("the rule applies to no package: its path pattern no longer matches the layout")
			}
		})
	}
}

func rules() []rule {
	return []rule{
		{
			name:      "contract imports only contract",
			why:       "upi/shared/contract is what the services agree on; it must not pull in any of our code",
			appliesTo: func(_ *workspace, p pkg) bool { return within(p.ImportPath, contract) },
			checked:   productionImports,
			forbids: func(w *workspace, _ pkg, imported string) bool {
				return w.ours(imported) && !within(imported, contract)
			},
		},
		{
			name:      "platform imports no service",
			why:       "upi/shared/platform serves every service and must know none of them",
			appliesTo: func(_ *workspace, p pkg) bool { return within(p.ImportPath, platform) },
			checked:   allImports,
			forbids:   func(w *workspace, _ pkg, imported string) bool { return w.serviceOf(imported) != "" },
		},
		{
			name:      "domain imports only contract",
			why:       "the domain is pure: aggregates and decisions over upi/shared/contract, with no I/O",
			appliesTo: inLayer("domain"),
			checked:   productionImports,
			forbids: func(w *workspace, p pkg, imported string) bool {
				return w.ours(imported) && !within(imported, contract) && !within(imported, layerOf(w, p, "domain"))
			},
		},
		layerRule("app imports neither httpapi nor adapters",
			"app defines the ports it needs; adapters implement them and httpapi calls app, never the reverse",
			"app", "httpapi", "adapters"),
		layerRule("adapters never import httpapi",
			"adapters implement app's ports; HTTP handling is httpapi's alone",
			"adapters", "httpapi"),
		layerRule("httpapi never imports adapters",
			"httpapi calls app; main wires the adapters into app",
			"httpapi", "adapters"),
		{
			name:      "no service imports another",
			why:       "services meet only over HTTP and the event log; what they share belongs in upi/shared",
			appliesTo: func(w *workspace, p pkg) bool { return w.serviceOf(p.ImportPath) != "" },
			checked:   allImports,
			forbids: func(w *workspace, p pkg, imported string) bool {
				other := w.serviceOf(imported)
				return other != "" && other != w.serviceOf(p.ImportPath)
			},
		},
		{
			name: "only tests import testenv",
			why:  "upi/testenv is test-only: import it from _test.go files or from a package only tests import",
			appliesTo: func(w *workspace, p pkg) bool {
				return !within(p.ImportPath, testenv) && !w.testOnly[p.ImportPath]
			},
			checked: productionImports,
			forbids: func(_ *workspace, _ pkg, imported string) bool { return within(imported, testenv) },
		},
		{
			name: "no command links test code",
			why: "upi/testenv and testcontainers are for tests; `go mod why PACKAGE` in the command's module " +
				"shows which import brings them in",
			appliesTo: func(_ *workspace, p pkg) bool { return p.Name == "main" },
			checked:   func(p pkg) []string { return treesAmong(p.Deps, testenv, testcontainers) },
			forbids: func(_ *workspace, _ pkg, tree string) bool {
				return tree == testenv || tree == testcontainers
			},
		},
	}
}

// layerRule forbids the packages of one layer of every service to import the given layers of the same
// service.
func layerRule(name, why, layer string, forbidden ...string) rule {
	return rule{
		name:      name,
		why:       why,
		appliesTo: inLayer(layer),
		checked:   productionImports,
		forbids: func(w *workspace, p pkg, imported string) bool {
			return slices.ContainsFunc(forbidden, func(l string) bool { return within(imported, layerOf(w, p, l)) })
		},
	}
}

func productionImports(p pkg) []string { return p.Imports }

func allImports(p pkg) []string {
	return append(append(append([]string(nil), p.Imports...), p.TestImports...), p.XTestImports...)
}

// treesAmong names each of trees that holds one of the packages, once, so that a command linking forty
// packages of one library is one violation, not forty.
func treesAmong(packages []string, trees ...string) []string {
	var found []string
	for _, tree := range trees {
		if slices.ContainsFunc(packages, func(p string) bool { return within(p, tree) }) {
			found = append(found, tree)
		}
	}
	return found
}

// inLayer matches the packages of one layer of a service (internal/NAME and below).
func inLayer(name string) func(w *workspace, p pkg) bool {
	return func(w *workspace, p pkg) bool {
		layer := layerOf(w, p, name)
		return layer != "" && within(p.ImportPath, layer)
	}
}

// layerOf is the import path of layer NAME in p's service, or "" when p is in no service.
func layerOf(w *workspace, p pkg, name string) string {
	service := w.serviceOf(p.ImportPath)
	if service == "" {
		return ""
	}
	return service + "/internal/" + name
}

// within reports whether importPath is tree or a package below it.
func within(importPath, tree string) bool {
	return tree != "" && (importPath == tree || strings.HasPrefix(importPath, tree+"/"))
}

// ours reports whether importPath belongs to a module of the workspace.
func (w *workspace) ours(importPath string) bool {
	for _, m := range w.modules {
		if within(importPath, m) {
			return true
		}
	}
	return false
}

// serviceOf is the module path of the service importPath belongs to, or "".
func (w *workspace) serviceOf(importPath string) string {
	for _, s := range w.services {
		if within(importPath, s) {
			return s
		}
	}
	return ""
}

// loadWorkspace lists every package of every module in go.work, run from the workspace's root.
func loadWorkspace(t *testing.T) *workspace {
	t.Helper()
	workFile := strings.TrimSpace(goCommand(t, ".", "env", "GOWORK"))
	if workFile == "" || workFile == "off" {
		t.Fatal("the import rules span every module: run this test in the workspace (go.work), not with GOWORK=off")
	}
	root := filepath.Dir(workFile)
	w := &workspace{modules: strings.Fields(goCommand(t, root, "list", "-m", "-f", "{{.Path}}"))}
	patterns := make([]string, len(w.modules))
	for i, m := range w.modules {
		patterns[i] = m + "/..."
	}
	args := append([]string{"list", "-e", "-json=ImportPath,Name,Module,Imports,TestImports,XTestImports,Deps,Error"}, patterns...)
	pkgs, err := decodePackages(goCommand(t, root, args...))
	if err != nil {
		t.Fatalf("decode go list: %v", err)
	}
	for _, p := range pkgs {
		if p.Error != nil {
			t.Errorf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		if p.Module != nil && p.ImportPath == p.Module.Path && p.Name == "main" {
			w.services = append(w.services, p.Module.Path)
		}
	}
	w.pkgs = pkgs
	w.testOnly = testOnlyPackages(pkgs)
	if len(w.services) == 0 {
		t.Fatalf("no service found among modules %v: a service is a module whose root package is main", w.modules)
	}
	t.Logf("%d packages in %d modules; services: %v", len(w.pkgs), len(w.modules), w.services)
	return w
}

// testOnlyPackages finds the packages that tests import and no production code does. It starts from
// every package a test imports and drops, until nothing changes, each one that a package outside the
// set imports.
func testOnlyPackages(pkgs []pkg) map[string]bool {
	testOnly := map[string]bool{}
	for _, p := range pkgs {
		for _, imported := range append(append([]string(nil), p.TestImports...), p.XTestImports...) {
			testOnly[imported] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for _, p := range pkgs {
			if testOnly[p.ImportPath] {
				continue
			}
			for _, imported := range p.Imports {
				if testOnly[imported] {
					delete(testOnly, imported)
					changed = true
				}
			}
		}
	}
	return testOnly
}

func decodePackages(stream string) ([]pkg, error) {
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(stream))
	for {
		var p pkg
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return pkgs, nil
		}
		if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
}

// goCommand runs the go command in dir and returns its standard output.
func goCommand(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
