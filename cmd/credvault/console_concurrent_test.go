package main

import (
	"io"
	"strings"
	"sync"
	"testing"
)

// TestConsolePagesRenderedConcurrently: pages rendered at the same time
// each get their own body. The page buffer went back to its pool while
// Fiber still held it for the response (Send keeps the slice), so one
// request could be answered with another's page, another user's data
// included; the race detector flags the shared buffer.
func TestConsolePagesRenderedConcurrently(t *testing.T) {
	cl, inst, ownerKey := consoleCluster(t)
	ownerID := whoamiUser(t, cl, inst, ownerKey)
	b := newBrowserish(t, inst.url)
	b.signInWithLink(newLink(t, cl, inst, ownerKey, ownerID))
	pages := map[string]string{"/credentials": "<title>Credentials", "/api-keys": "<title>API keys", "/members": "<title>Members"}
	var wg sync.WaitGroup
	errs := make(chan string, 400)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				path := []string{"/credentials", "/api-keys", "/members"}[(w+i)%3]
				resp, err := b.client.Get(inst.url + path)
				if err != nil {
					errs <- path + ": " + err.Error()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(body), pages[path]) || !strings.HasSuffix(strings.TrimSpace(string(body)), "</html>") {
					errs <- path + ": got another or a broken page"
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
