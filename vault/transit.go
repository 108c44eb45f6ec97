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

// Batch sizes. A real server limits the JSON of one request body, not only
// its bytes: OpenBao (since 2.4.1) refuses a body with more than
// max_request_json_strings strings, 1000 by default, object keys included;
// HashiCorp Vault has its own max_json_* listener limits an operator may
// tighten. A batch request is {"batch_input":[{...}, ...]}: one string for
// "batch_input", plus, per item, each field's key and its string value.
const (
	// DefaultMaxRequestJSONStrings is OpenBao's default
	// max_request_json_strings.
	DefaultMaxRequestJSONStrings = 1000
	// batchEnvelopeStrings is the "batch_input" key.
	batchEnvelopeStrings = 1
	// MaxBatch is the most items one request may carry under OpenBao's
	// default limit: (1000 - 1) / 4 = 249 for encrypt, decrypt and rewrap
	// alike (ItemsPerRequest). Config.BatchSize and `credvault rewrap
	// --batch` are bounded by it.
	MaxBatch = (DefaultMaxRequestJSONStrings - batchEnvelopeStrings) / 4
	// DefaultBatch is the items per request when Config.BatchSize is 0:
	// 801 strings, a fifth under OpenBao's default, leaving room for a
	// server configured a little tighter.
	DefaultBatch = 200
	// maxSplitRounds bounds how often one refused batch is halved: 8
	// rounds take 249 items down to one.
	maxSplitRounds = 8
)

// itemFields is each batch operation's fields per item, all strings:
// encrypt {plaintext, context}, decrypt and rewrap {ciphertext, context}.
var itemFields = map[string]int{"encrypt": 2, "decrypt": 2, "rewrap": 2}

// StringsPerItem is how many JSON strings one batch_input item of op
// ("encrypt", "decrypt" or "rewrap") costs: a key and a value per field.
func StringsPerItem(op string) int { return 2 * itemFields[op] }

// ItemsPerRequest is the most items of op one request may carry when the
// server accepts at most maxStrings JSON strings per body; 0 when not even
// one fits or op is unknown.
func ItemsPerRequest(op string, maxStrings int) int {
	per := StringsPerItem(op)
	if per == 0 || maxStrings <= batchEnvelopeStrings {
		return 0
	}
	return (maxStrings - batchEnvelopeStrings) / per
}

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
	size := int(c.batchSize.Load())
	for start := 0; start < len(items); {
		chunk := items[start:min(start+size, len(items))]
		res, err := c.batchChunk(ctx, op, chunk, input, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
		start += len(chunk)
		// A split lowered the size: the next chunks use it from the start.
		size = int(c.batchSize.Load())
	}
	return out, nil
}

// batchChunk sends one batch request. When the server refuses it for its
// JSON complexity (ErrTooComplex), it halves the chunk, remembers the
// smaller size for later requests, logs that once per client, and sends
// both halves, at most maxSplitRounds times deep.
func (c *Client) batchChunk(ctx context.Context, op string, chunk []Item, input func(Item) map[string]any, round int) ([]Result, error) {
	in := make([]map[string]any, len(chunk))
	for i, it := range chunk {
		in[i] = input(it)
	}
	d, err := c.call(ctx, op, map[string]any{"batch_input": in})
	if ErrorIs(err, ErrTooComplex) && len(chunk) > 1 && round < maxSplitRounds {
		half := (len(chunk) + 1) / 2
		for {
			cur := c.batchSize.Load()
			if int(cur) <= half || c.batchSize.CompareAndSwap(cur, int64(half)) {
				break
			}
		}
		c.splitOnce.Do(func() {
			c.log.Warn("vault: the server refused a batch for its JSON complexity; sending smaller batches from now on (lower --batch, or raise the server's limit: OpenBao max_request_json_strings, Vault max_json_*)",
				"operation", op, "items_refused", len(chunk), "items_per_request", half)
		})
		first, err := c.batchChunk(ctx, op, chunk[:half], input, round+1)
		if err != nil {
			return nil, err
		}
		second, err := c.batchChunk(ctx, op, chunk[half:], input, round+1)
		if err != nil {
			return nil, err
		}
		return append(first, second...), nil
	}
	if err != nil {
		return nil, err
	}
	if len(d.BatchResults) != len(chunk) {
		return nil, credvault.Errorf(credvault.EINTERNAL, "vault %s: %d results for %d items", op, len(d.BatchResults), len(chunk))
	}
	out := make([]Result, 0, len(chunk))
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
	// RawRequestWithContext is deprecated in favour of Logical()'s calls,
	// but neither serves here: WriteWithContext drops the batch_results of
	// a 400, and WriteRawWithContext cancels the request's context (the
	// client timeout's) when it returns, so a 200 body can no longer be
	// read (TestBatchCarriesPerItemErrors and the batch split tests fail
	// with "context canceled" on it).
	//lint:ignore SA1019 see above: the only call that returns a readable body for every status
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
