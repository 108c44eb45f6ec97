package devtransit

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// maxBatchItems caps batch_input, so one request cannot pin the server.
const maxBatchItems = 10000

// item is one element of batch_input (or the single-item form).
type item struct {
	context, plaintext, ciphertext, nonce, aad, reference string
	keyVersion                                            int
	ctx                                                   []byte // decoded context
	pt                                                    []byte // decoded plaintext
}

// encResult is Vault's encrypt and rewrap batch result item.
type encResult struct {
	Ciphertext string `json:"ciphertext,omitempty"`
	KeyVersion int    `json:"key_version,omitempty"`
	Error      string `json:"error,omitempty"`
	Reference  string `json:"reference"`
}

// decResult is Vault's decrypt batch result item.
type decResult struct {
	Plaintext string `json:"plaintext"`
	Error     string `json:"error,omitempty"`
	Reference string `json:"reference"`
}

// decodeBatch reads batch_input with Vault's type rules and error texts;
// need names the required field ("plaintext", "ciphertext", or "" for
// rewrap).
func decodeBatch(raw any, need string) ([]item, error) {
	list, ok := raw.([]any)
	if !ok {
		return nil, internalError(fmt.Sprintf("failed to parse batch input: source data must be an array or slice, got %T", raw))
	}
	if len(list) > maxBatchItems {
		return nil, userError("batch_input has %d items; devtransit accepts at most %d", len(list), maxBatchItems)
	}
	items := make([]item, len(list))
	var errs []string
	for i, rawItem := range list {
		m, ok := rawItem.(map[string]any)
		if !ok {
			return nil, internalError(fmt.Sprintf("failed to parse batch input: [%d] expected a map, got '%T'", i, rawItem))
		}
		strField := func(name string, dst *string) {
			v, has := m[name]
			if !has || (v == nil && name != "plaintext") {
				if !has && name == need {
					errs = append(errs, fmt.Sprintf("'[%d].%s' missing %s to %s", i, name, name, map[string]string{"plaintext": "encrypt", "ciphertext": "decrypt"}[name]))
				}
				return
			}
			if s, ok := v.(string); ok {
				*dst = s
				return
			}
			errs = append(errs, fmt.Sprintf("'[%d].%s' expected type 'string', got unconvertible type '%T'", i, name, v))
		}
		strField("context", &items[i].context)
		strField("ciphertext", &items[i].ciphertext)
		if need != "" { // rewrap items have no plaintext field
			strField("plaintext", &items[i].plaintext)
		}
		strField("nonce", &items[i].nonce)
		strField("associated_data", &items[i].aad)
		strField("reference", &items[i].reference)
		if v, has := m["key_version"]; has && v != nil {
			switch n := v.(type) {
			case json.Number:
				kv, err := n.Int64()
				if err != nil {
					errs = append(errs, fmt.Sprintf(`error decoding %T into [%d].key_version: strconv.ParseInt: parsing "%s": invalid syntax`, v, i, n))
				}
				items[i].keyVersion = int(kv)
			default:
				errs = append(errs, fmt.Sprintf("'[%d].key_version' expected type 'int', got unconvertible type '%T'", i, v))
			}
		}
	}
	if len(errs) > 0 {
		for i := range errs {
			errs[i] = "* " + errs[i]
		}
		sort.Strings(errs)
		return nil, internalError(fmt.Sprintf("failed to parse batch input: %d error(s) decoding:\n\n%s", len(errs), strings.Join(errs, "\n")))
	}
	if len(items) == 0 {
		return nil, userError("missing batch input to process")
	}
	return items, nil
}

// singleItem builds the one-item list of the non-batch form.
func singleItem(d map[string]any, fields ...string) (item, error) {
	var it item
	dst := map[string]*string{"plaintext": &it.plaintext, "ciphertext": &it.ciphertext, "context": &it.context,
		"nonce": &it.nonce, "associated_data": &it.aad}
	for _, f := range fields {
		if f == "key_version" {
			v, _, err := integer(d, f)
			if err != nil {
				return it, err
			}
			it.keyVersion = v
			continue
		}
		v, _, err := str(d, f)
		if err != nil {
			return it, err
		}
		*dst[f] = v
	}
	return it, nil
}

// checkItems runs Vault's first pass: context all-or-none, then per-item
// base64 decoding. It returns a whole-request error or per-item errors.
func checkItems(items []item, decodePlaintext bool, errsOut []string) (bool, error) {
	contextSet := items[0].context != ""
	bad := false
	for i := range items {
		it := &items[i]
		if (it.context != "") != contextSet {
			return false, userError(msgMixedContext)
		}
		var err error
		if decodePlaintext {
			if it.pt, err = base64.StdEncoding.DecodeString(it.plaintext); err != nil {
				errsOut[i], bad = err.Error(), true
				continue
			}
		} else if it.ciphertext == "" {
			errsOut[i], bad = "missing ciphertext to decrypt", true
			continue
		}
		if it.context != "" {
			if it.ctx, err = base64.StdEncoding.DecodeString(it.context); err != nil {
				errsOut[i], bad = err.Error(), true
				continue
			}
		}
		if it.nonce != "" {
			if _, err = base64.StdEncoding.DecodeString(it.nonce); err != nil {
				errsOut[i], bad = err.Error(), true
				continue
			}
		}
	}
	return bad, nil
}

// batchStatus applies Vault's batch status rules: 400 for a caller error in
// any item, 500 for an internal one, replaced by partial_failure_response_code
// when at least one item succeeded.
func batchStatus(d map[string]any, resp *response, success, userBad, internalBad bool) error {
	if !userBad && !internalBad {
		return nil
	}
	code := http.StatusBadRequest
	if !userBad {
		code = http.StatusInternalServerError
	}
	if v, ok, err := integer(d, "partial_failure_response_code"); err != nil {
		return err
	} else if ok && success {
		if v < 1 || v > 599 {
			resp.warn("invalid HTTP response code override from partial_failure_response_code, reverting to %d", code)
		} else {
			code = v
		}
	}
	resp.status = code
	return nil
}
