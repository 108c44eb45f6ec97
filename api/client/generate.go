package client

// Regenerate client.gen.go after editing api/openapi.yaml with
// `go generate ./api/client`; TestGeneratedClientIsCurrent fails while it
// is stale. The generator's version is pinned here and nowhere else.
//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml ../openapi.yaml
