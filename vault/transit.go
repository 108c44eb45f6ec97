package vault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"credvault/internal/credvault"
)

// MaxBatch is how many items one transit batch request carries. Real Vault
// accepts up to 10,000; 1,000 keeps each request well under its 32 MiB body
// cap even for large values, and the batch methods split longer inputs.
const MaxBatch = 1000

// Item is one input of a batch call (the domain's TransitItem).
type Item = credvault.TransitItem

// Result is one output of a batch call, in input order (the domain's
// TransitResult). Err is a *credvault.Error whose cause is ErrIntegrity for
// a rejected ciphertext.
type Result = credvault.TransitResult

type transitData struct {
	Ciphertext   string        `json:"ciphertext"`
	Plaintext    string        `json:"plaintext"`
	KeyVersion   int           `json:"key_version"`
	BatchResults []transitItem `json:"batch_results"`
}

type transitItem struct {
	Ciphertext string `json:"ciphertext"`
	Plaintext  string `json:"plaintext"`
	KeyVersion int    `json:"key_version"`
	Error      string `json:"error"`
}

// Encrypt encrypts plaintext under the transit key with the derivation
// context. Errors: EUNAVAILABLE (Vault down, key missing, token refused),
// EINTERNAL otherwise.
func (c *Client) Encrypt(ctx context.Context, plaintext, derivation []byte) (string, error) {
	d, err := c.call(ctx, "encrypt", map[string]any{
		"plaintext": b64(plaintext),
		"context":   b64(derivation),
	})
	if err != nil {
		return "", err
	}
	return d.Ciphertext, nil
}

// Decrypt decrypts a ciphertext made with the same derivation context.
// Errors: EINTERNAL wrapping ErrIntegrity when Vault rejects the ciphertext
// (never retried), EUNAVAILABLE when Vault is down.
func (c *Client) Decrypt(ctx context.Context, ciphertext string, derivation []byte) ([]byte, error) {
	d, err := c.call(ctx, "decrypt", map[string]any{
		"ciphertext": ciphertext,
		"context":    b64(derivation),
	})
	if err != nil {
		return nil, err
	}
	return unb64(d.Plaintext, "decrypt")
}

// Rewrap re-encrypts a ciphertext under the latest key version without
// revealing the plaintext to credvault. Errors as for Decrypt.
func (c *Client) Rewrap(ctx context.Context, ciphertext string, derivation []byte) (string, error) {
	d, err := c.call(ctx, "rewrap", map[string]any{
		"ciphertext": ciphertext,
		"context":    b64(derivation),
	})
	if err != nil {
		return "", err
	}
	return d.Ciphertext, nil
}

// EncryptBatch encrypts every item (Plaintext, Context). The returned error
// is for the call as a whole (Vault down); per-item failures are in
// Result.Err.
func (c *Client) EncryptBatch(ctx context.Context, items []Item) ([]Result, error) {
	return c.batch(ctx, "encrypt", items, func(it Item) map[string]any {
		return map[string]any{"plaintext": b64(it.Plaintext), "context": b64(it.Context)}
	})
}

// DecryptBatch decrypts every item (Ciphertext, Context); see EncryptBatch.
func (c *Client) DecryptBatch(ctx context.Context, items []Item) ([]Result, error) {
	return c.batch(ctx, "decrypt", items, func(it Item) map[string]any {
		return map[string]any{"ciphertext": it.Ciphertext, "context": b64(it.Context)}
	})
}

// RewrapBatch rewraps every item (Ciphertext, Context) to the latest key
// version; see EncryptBatch.
func (c *Client) RewrapBatch(ctx context.Context, items []Item) ([]Result, error) {
	return c.batch(ctx, "rewrap", items, func(it Item) map[string]any {
		return map[string]any{"ciphertext": it.Ciphertext, "context": b64(it.Context)}
	})
}

func (c *Client) batch(ctx context.Context, op string, items []Item, input func(Item) map[string]any) ([]Result, error) {
	out := make([]Result, 0, len(items))
	for start := 0; start < len(items); start += MaxBatch {
		chunk := items[start:min(start+MaxBatch, len(items))]
		in := make([]map[string]any, len(chunk))
		for i, it := range chunk {
			in[i] = input(it)
		}
		d, err := c.call(ctx, op, map[string]any{"batch_input": in})
		if err != nil {
			return nil, err
		}
		if len(d.BatchResults) != len(chunk) {
			return nil, credvault.Errorf(credvault.EINTERNAL, "vault %s: %d results for %d items", op, len(d.BatchResults), len(chunk))
		}
		for _, r := range d.BatchResults {
			res := Result{Ciphertext: r.Ciphertext, KeyVersion: r.KeyVersion}
			switch {
			case r.Error != "":
				res.Err = classifyMessage(r.Error, "vault "+op)
			case op == "decrypt":
				res.Plaintext, res.Err = unb64(r.Plaintext, op)
			}
			out = append(out, res)
		}
	}
	return out, nil
}

// call posts body to <mount>/<op>/<key> and decodes data. A batch answered
// with 400 still carries batch_results (Vault puts each item's error there
// and no top-level errors); those are returned, not treated as a failure.
func (c *Client) call(ctx context.Context, op string, body map[string]any) (d *transitData, err error) {
	if c.observe != nil {
		start := time.Now()
		defer func() { c.observe(op, err, time.Since(start)) }()
	}
	req := c.api.NewRequest(http.MethodPost, c.path(op))
	if err := req.SetJSONBody(body); err != nil {
		return nil, credvault.Wrap(credvault.EINTERNAL, err, "vault %s: encode request", op)
	}
	resp, err := c.api.RawRequestWithContext(ctx, req)
	if resp != nil {
		defer resp.Body.Close()
	}
	what := "vault " + op
	if err != nil {
		var re *vaultapi.ResponseError
		_, isBatch := body["batch_input"]
		if !isBatch || !errors.As(err, &re) || resp == nil || re.StatusCode != http.StatusBadRequest {
			return nil, translate(err, what)
		}
		// Error() has buffered the body; it is readable again.
		var env struct {
			Data *transitData `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&env) != nil || env.Data == nil || env.Data.BatchResults == nil {
			return nil, translate(err, what)
		}
		return env.Data, nil
	}
	var env struct {
		Data *transitData `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Data == nil {
		return nil, credvault.Wrap(credvault.EUNAVAILABLE, errors.Join(ErrUnavailable, err), "%s: unreadable answer from vault", what)
	}
	return env.Data, nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func unb64(s, op string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, credvault.Wrap(credvault.EINTERNAL, err, "vault %s: answer is not base64", op)
	}
	return b, nil
}

// jsonInt reads a number from a Logical() response (the client decodes
// numbers as json.Number).
func jsonInt(v any) (int, error) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return int(i), err
	case float64:
		return int(n), nil
	case int:
		return n, nil
	}
	return 0, fmt.Errorf("not a number: %T", v)
}
