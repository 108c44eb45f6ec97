package httpapi

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"credvault/internal/credvault"
)

var pathParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// TestOpenAPIDescribesEveryRoute keeps api/openapi.yaml and routes.go in
// step: the document is valid, and the set of (method, path) pairs is the
// same on both sides.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is invalid: %v", err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			// Fiber serves HEAD for every GET by itself; HEAD is compared
			// on neither side.
			if method != "HEAD" {
				documented[method+" "+path] = true
			}
		}
	}
	served := map[string]bool{}
	all := NewServer(Config{Services: Services{Verifier: nopVerifier{}}})
	for _, r := range all.Handler().GetRoutes(true) {
		if r.Method == "HEAD" || r.Path == "/" {
			continue
		}
		p := pathParam.ReplaceAllString(r.Path, "{$1}")
		p = strings.Replace(p, "*", "{path}", 1)
		served[r.Method+" "+p] = true
	}
	for _, k := range sortedKeys(served) {
		if !documented[k] {
			t.Errorf("route %s is not in api/openapi.yaml", k)
		}
	}
	for _, k := range sortedKeys(documented) {
		if !served[k] {
			t.Errorf("api/openapi.yaml describes %s, which routes.go does not serve", k)
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// nopVerifier lets NewServer mount the /v1 routes; no request reaches it.
type nopVerifier struct{}

func (nopVerifier) Verify(context.Context, string) (credvault.Verification, error) {
	return credvault.Verification{}, nil
}

// TestOpenAPINullableSurvivesAllOf: in OpenAPI 3.0.3 `nullable: true`
// adds null only to the types of its own schema, so a nullable field
// written as `allOf: [$ref]` allows null only when every schema it
// combines does too (prism and other strict validators refuse null
// otherwise). Every such field in the document must hold.
func TestOpenAPINullableSurvivesAllOf(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[*openapi3.Schema]bool{}
	var walk func(where string, s *openapi3.SchemaRef)
	walk = func(where string, s *openapi3.SchemaRef) {
		if s == nil || s.Value == nil || seen[s.Value] {
			return
		}
		v := s.Value
		seen[v] = true
		if v.Nullable {
			for _, sub := range v.AllOf {
				if sub.Value != nil && !sub.Value.Nullable {
					t.Errorf("%s is nullable, but its allOf part %s is not: null is refused", where, sub.Ref)
				}
			}
		}
		for name, p := range v.Properties {
			walk(where+"."+name, p)
		}
		for _, list := range []openapi3.SchemaRefs{v.AllOf, v.AnyOf, v.OneOf} {
			for _, sub := range list {
				walk(where, sub)
			}
		}
		walk(where+"[]", v.Items)
	}
	for _, name := range sortedSchemaNames(doc.Components.Schemas) {
		walk(name, doc.Components.Schemas[name])
	}
}

func sortedSchemaNames(m openapi3.Schemas) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
