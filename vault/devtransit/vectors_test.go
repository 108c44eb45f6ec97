package devtransit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
)

// vectorFile is testdata/transit.json: keys and ciphertexts recorded from a
// real OpenBao server.
type vectorFile struct {
	Keys []struct {
		Name        string            `json:"name"`
		Derived     bool              `json:"derived"`
		KDF         *string           `json:"kdf"`
		MaterialB64 map[string]string `json:"key_material_b64"`
		Cases       []struct {
			PlaintextB64 string  `json:"plaintext_b64"`
			ContextB64   *string `json:"context_b64"`
			Ciphertext   string  `json:"ciphertext"`
			KeyVersion   int     `json:"key_version"`
		} `json:"cases"`
	} `json:"keys"`
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/transit.json")
	if err != nil {
		t.Fatalf("reading vectors: %v", err)
	}
	var vf vectorFile
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatalf("decoding vectors: %v", err)
	}
	if len(vf.Keys) == 0 {
		t.Fatal("no vector keys")
	}
	return vf
}

// TestVectors decrypts every ciphertext recorded from a real server, with
// that server's key material loaded through ImportKey, over real HTTP with
// the real vault/api client; then rewraps each v1 ciphertext to v2.
func TestVectors(t *testing.T) {
	localOnly(t, "ImportKey")
	vf := loadVectors(t)
	s, addr := startLocal(t, Options{})
	c := newClient(t, addr, testRootToken)
	ctx := context.Background()
	for _, k := range vf.Keys {
		t.Run(k.Name, func(t *testing.T) {
			versions := map[int][]byte{}
			for v, m := range k.MaterialB64 {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("version %q: %v", v, err)
				}
				if versions[n], err = base64.StdEncoding.DecodeString(m); err != nil {
					t.Fatalf("material v%d: %v", n, err)
				}
			}
			if err := s.ImportKey("transit", k.Name, k.Derived, versions); err != nil {
				t.Fatalf("ImportKey: %v", err)
			}
			key, err := c.Logical().ReadWithContext(ctx, "transit/keys/"+k.Name)
			if err != nil || key == nil {
				t.Fatalf("reading key: %v %v", key, err)
			}
			if got := key.Data["derived"]; got != k.Derived {
				t.Errorf("got derived %v, want %v", got, k.Derived)
			}
			if k.KDF != nil && key.Data["kdf"] != *k.KDF {
				t.Errorf("got kdf %v, want %v", key.Data["kdf"], *k.KDF)
			}
			var batch []any
			for i, tc := range k.Cases {
				body := map[string]any{"ciphertext": tc.Ciphertext}
				if tc.ContextB64 != nil {
					body["context"] = *tc.ContextB64
				}
				batch = append(batch, body)
				if !strings.HasPrefix(tc.Ciphertext, "vault:v"+strconv.Itoa(tc.KeyVersion)+":") {
					t.Fatalf("case %d: ciphertext %q does not carry version %d", i, tc.Ciphertext, tc.KeyVersion)
				}
				sealed, _ := base64.StdEncoding.DecodeString(tc.Ciphertext[strings.LastIndex(tc.Ciphertext, ":")+1:])
				pt, _ := base64.StdEncoding.DecodeString(tc.PlaintextB64)
				if len(sealed) != len(pt)+28 {
					t.Errorf("case %d: got %d ciphertext bytes, want plaintext+28 = %d", i, len(sealed), len(pt)+28)
				}
				sec, err := c.Logical().WriteWithContext(ctx, "transit/decrypt/"+k.Name, body)
				if err != nil {
					t.Fatalf("case %d: decrypt: %v", i, err)
				}
				if got := sec.Data["plaintext"]; got != tc.PlaintextB64 {
					t.Errorf("case %d: got plaintext %v, want %v", i, got, tc.PlaintextB64)
				}
				if tc.KeyVersion != 1 {
					continue
				}
				rw, err := c.Logical().WriteWithContext(ctx, "transit/rewrap/"+k.Name, body)
				if err != nil {
					t.Fatalf("case %d: rewrap: %v", i, err)
				}
				newCT, _ := rw.Data["ciphertext"].(string)
				if !strings.HasPrefix(newCT, "vault:v2:") || num(t, rw.Data["key_version"]) != 2 {
					t.Fatalf("case %d: rewrap gave %q version %v, want vault:v2", i, newCT, rw.Data["key_version"])
				}
				body["ciphertext"] = newCT
				sec, err = c.Logical().WriteWithContext(ctx, "transit/decrypt/"+k.Name, body)
				if err != nil {
					t.Fatalf("case %d: decrypt rewrapped: %v", i, err)
				}
				if got := sec.Data["plaintext"]; got != tc.PlaintextB64 {
					t.Errorf("case %d: rewrapped: got plaintext %v, want %v", i, got, tc.PlaintextB64)
				}
			}
			// The same ciphertexts in one batch.
			for i := range batch {
				batch[i].(map[string]any)["ciphertext"] = k.Cases[i].Ciphertext
				batch[i].(map[string]any)["reference"] = "row-" + strconv.Itoa(i)
			}
			res := raw(t, c, "PUT", "transit/decrypt/"+k.Name, map[string]any{"batch_input": batch})
			if res.status != 200 {
				t.Fatalf("batch decrypt: got status %d, want 200: %s", res.status, res.text)
			}
			items := res.body["data"].(map[string]any)["batch_results"].([]any)
			for i, it := range items {
				m := it.(map[string]any)
				if m["plaintext"] != k.Cases[i].PlaintextB64 || m["reference"] != "row-"+strconv.Itoa(i) || m["error"] != nil {
					t.Errorf("batch item %d: got %v, want plaintext %q", i, m, k.Cases[i].PlaintextB64)
				}
			}
		})
	}
}

// TestVectorsRoundTrip checks that what devtransit encrypts under the
// recorded keys has the recorded shape and decrypts back.
func TestVectorsRoundTrip(t *testing.T) {
	localOnly(t, "ImportKey")
	vf := loadVectors(t)
	s, addr := startLocal(t, Options{})
	c := newClient(t, addr, testRootToken)
	for _, k := range vf.Keys {
		versions := map[int][]byte{}
		for v, m := range k.MaterialB64 {
			n, _ := strconv.Atoi(v)
			versions[n], _ = base64.StdEncoding.DecodeString(m)
		}
		if err := s.ImportKey("transit", k.Name, k.Derived, versions); err != nil {
			t.Fatalf("ImportKey: %v", err)
		}
		for i, tc := range k.Cases {
			body := map[string]any{"plaintext": tc.PlaintextB64, "key_version": tc.KeyVersion}
			if tc.ContextB64 != nil {
				body["context"] = *tc.ContextB64
			}
			enc, err := c.Logical().Write("transit/encrypt/"+k.Name, body)
			if err != nil {
				t.Fatalf("%s case %d: encrypt: %v", k.Name, i, err)
			}
			ct := enc.Data["ciphertext"].(string)
			if !strings.HasPrefix(ct, "vault:v"+strconv.Itoa(tc.KeyVersion)+":") || len(ct) != len(tc.Ciphertext) {
				t.Errorf("%s case %d: got %q, want the shape of %q", k.Name, i, ct, tc.Ciphertext)
			}
			delete(body, "plaintext")
			delete(body, "key_version")
			body["ciphertext"] = ct
			dec, err := c.Logical().Write("transit/decrypt/"+k.Name, body)
			if err != nil || dec.Data["plaintext"] != tc.PlaintextB64 {
				t.Errorf("%s case %d: decrypt: got %v %v, want %q", k.Name, i, dec, err, tc.PlaintextB64)
			}
		}
	}
}
