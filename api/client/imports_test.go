package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// clientDeps are the only packages outside the standard library that
// api/client may link: itself and the generated code's runtime. A web
// framework here (Fiber and fasthttp once were, for the Fiber middleware)
// would weigh on every service that only calls credvault.
var clientDeps = map[string]bool{
	"credvault/api/client":                  true,
	"github.com/oapi-codegen/runtime":       true,
	"github.com/oapi-codegen/runtime/types": true,
	"github.com/google/uuid":                true,
	"github.com/apapsch/go-jsonmerge/v2":    true,
}

// TestClientImportGraph lists api/client's whole import graph with
// `go list -deps` and refuses anything but the standard library and
// clientDeps (the runtime's internal packages included).
func TestClientImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "credvault/api/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if clientDeps[p] || strings.HasPrefix(p, "github.com/oapi-codegen/runtime/") {
			continue
		}
		t.Errorf("api/client links %s: only net/http, the generated code and its runtime belong there", p)
	}
}
