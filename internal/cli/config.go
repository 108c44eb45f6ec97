package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/term"

	"credvault/api/client"
)

// fileConfig is the login file, <config dir>/credvault/config.json, mode
// 0600: the server URL and the key, nothing else.
type fileConfig struct {
	URL    string `json:"url"`
	APIKey string `json:"api_key"`
}

func (env Env) configPath() (string, error) {
	dir := env.ConfigDir
	if dir == "" {
		if x := env.Getenv("XDG_CONFIG_HOME"); x != "" {
			dir = x
		} else if h := env.Getenv("HOME"); h != "" && runtime.GOOS == "linux" {
			dir = filepath.Join(h, ".config")
		} else {
			d, err := os.UserConfigDir()
			if err != nil {
				return "", fmt.Errorf("no configuration directory: %w", err)
			}
			dir = d
		}
	}
	return filepath.Join(dir, "credvault", "config.json"), nil
}

// session is a command's environment; its client is made on first use,
// so that --help works before login.
type session struct {
	env Env
}

// client reads CREDVAULT_URL and CREDVAULT_API_KEY, else the login file,
// and returns a client for them.
// api checks the --output value a command was given, then returns the
// client for the logged-in server: the common start of every command that
// calls credvault. Errors: a usage error for a bad --output, errNotLoggedIn.
func (s *session) api(output string) (*client.ClientWithResponses, error) {
	if err := checkOutput(output); err != nil {
		return nil, err
	}
	return s.client()
}

func (s *session) client() (*client.ClientWithResponses, error) {
	env := s.env
	url, key := env.Getenv("CREDVAULT_URL"), env.Getenv("CREDVAULT_API_KEY")
	if url == "" || key == "" {
		p, err := env.configPath()
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(p) // #nosec G304 -- the CLI reads the config file its user named
		if errors.Is(err, os.ErrNotExist) {
			return nil, errNotLoggedIn
		} else if err != nil {
			return nil, err
		}
		var fc fileConfig
		if err := json.Unmarshal(b, &fc); err != nil || fc.URL == "" || fc.APIKey == "" {
			return nil, fmt.Errorf("%s is not a credvault login file; run `credvault login` again", p)
		}
		if url == "" {
			url = fc.URL
		}
		if key == "" {
			key = fc.APIKey
		}
	}
	c, err := client.New(url, key, client.WithHTTPClient(env.HTTPClient))
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return c, nil
}

// readSecret reads one secret: from a prompt without echo when stdin is a
// terminal, else all of stdin minus one trailing newline. what names it in
// the prompt and errors.
func readSecret(env Env, what string) (string, error) {
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(env.Stderr, "%s (input hidden): ", what)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.Stderr)
		if err != nil {
			return "", fmt.Errorf("reading the %s: %w", what, err)
		}
		return string(bytes.TrimSpace(b)), nil
	}
	b, err := io.ReadAll(io.LimitReader(bufio.NewReader(env.Stdin), 1<<20))
	if err != nil {
		return "", fmt.Errorf("reading the %s from stdin: %w", what, err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", usageErrorf("no %s on stdin: pipe it in (e.g. `... < file`) or run in a terminal to be prompted", what)
	}
	return s, nil
}

// runLogin is `credvault login --url URL`: the key from stdin or a prompt,
// checked with GET /v1/whoami, then saved.
func runLogin(ctx context.Context, args []string, env Env) error {
	fs, out := newFlags("login")
	url := fs.String("url", "", "credvault's URL, e.g. http://127.0.0.1:8080 (default $CREDVAULT_URL)")
	if _, err := parseFlags(fs, args, 0, "--url URL [--output table|json]   (the API key is read from stdin or a prompt)"); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	if *url == "" {
		*url = env.Getenv("CREDVAULT_URL")
	}
	if *url == "" {
		return usageErrorf("login needs --url (or CREDVAULT_URL)")
	}
	key, err := readSecret(env, "API key")
	if err != nil {
		return err
	}
	c, err := client.New(*url, key, client.WithHTTPClient(env.HTTPClient))
	if err != nil {
		return usageErrorf("%v", err)
	}
	r, err := c.WhoamiWithResponse(ctx)
	if err == nil {
		err = client.Check(r.HTTPResponse, r.Body)
	}
	if err != nil {
		return err
	}
	p, err := env.configPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(fileConfig{URL: *url, APIKey: key}, "", "  ") // #nosec G117 -- the CLI config file holds the API key on purpose, written with mode 0600
	if err := writePrivate(p, append(b, '\n')); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "Logged in to %s (org %s, key %s); saved in %s\n", *url, r.JSON200.OrgId, r.JSON200.KeyId, p)
	if *out == "json" { // the whoami answer: org, user, key id, scopes
		_, err := (&session{env: env}).result(*out, r.HTTPResponse, r.Body)
		return err
	}
	return nil
}

// writePrivate replaces p with b, mode 0600 from the start (never a
// moment readable by others).
func writePrivate(p string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".config-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

func runLogout(args []string, env Env) error {
	fs, out := newFlags("logout")
	if _, err := parseFlags(fs, args, 0, "[--output table|json]"); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	p, err := env.configPath()
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fmt.Fprintln(env.Stderr, "Logged out; removed", p)
	if *out == "json" {
		return (&session{env: env}).printJSON(map[string]any{"logged_out": true, "removed": p})
	}
	return nil
}
