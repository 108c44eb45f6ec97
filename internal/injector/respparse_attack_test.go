package injector

import (
	"math/rand"
	"strings"
	"testing"
)

// genHead builds a response from a grammar of plausible and hostile
// pieces, so that most inputs reach the fast path's decisions (unlike
// byte mutations, which mostly fall back at once).
func genHead(rng *rand.Rand) string {
	pick := func(s ...string) string { return s[rng.Intn(len(s))] }
	var b strings.Builder
	b.WriteString(pick("HTTP/1.1 ", "HTTP/1.1 ", "HTTP/1.0 "))
	b.WriteString(pick("200", "201", "204", "299", "304", "399", "404", "500", "599", "206", "205", "100", "103", "101"))
	b.WriteString(pick("", " ", " OK", "  OK", " Ok\tfine", " x y z"))
	b.WriteString("\r\n")
	names := []string{"Content-Length", "content-length", "CONTENT-LENGTH", "Transfer-Encoding", "transfer-encoding",
		"Connection", "connection", "Trailer", "Pragma", "Cache-Control", "X-A", "x-a", "Set-Cookie", "Keep-Alive",
		"Te", "Upgrade", "Proxy-Connection", "Content-Type", "X--", "a", "A-b-C"}
	vals := map[string][]string{
		"content-length":    {"0", "5", "05", "00000000000000005", "000000000000000005", "0000000000000000005", " 5 ", "\t5", "5,5", "", "-1", "+5", "5 5", "999999999999999999", "3"},
		"transfer-encoding": {"chunked", "Chunked", " chunked\t", "identity", "chunked, chunked", "gzip", "", "chunkeD"},
		"connection":        {"close", "keep-alive", "Close", "x, close", "keep-alive, close", "", "upgrade", "closed", " close "},
		"trailer":           {"X-T", ""},
		"pragma":            {"no-cache", "No-Cache", "x"},
		"cache-control":     {"no-store", ""},
	}
	nf := rng.Intn(6)
	for i := 0; i < nf; i++ {
		n := names[rng.Intn(len(names))]
		vs, ok := vals[strings.ToLower(n)]
		v := "v" + strings.Repeat("x", rng.Intn(3))
		if ok && rng.Intn(5) != 0 {
			v = vs[rng.Intn(len(vs))]
		}
		b.WriteString(n + pick(":", ": ", ":\t", ":  ") + v + pick("", "", " ", "\t") + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(pick("", "hello", "hel", "hellohello", "5\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
		"3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", "0\r\n\r\n", "5\r\nhel", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	return b.String()
}

// TestFastResponseGrammar runs the author's differential check on heads
// drawn from a grammar of framing fields (bounded, fixed seed).
func TestFastResponseGrammar(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	n := 30000
	if testing.Short() {
		n = 3000
	}
	fast := 0
	for i := 0; i < n; i++ {
		data := genHead(rng)
		seg := []int{1 << 20, 1 << 20, 5, 1}[rng.Intn(4)]
		method := []string{"GET", "HEAD", "", "POST"}[rng.Intn(4)]
		if diffResponse(t, respCase{data: []byte(data), seg: seg, bufSize: 4096, endErr: rng.Intn(3) == 0, method: method}) {
			fast++
		}
	}
	t.Logf("%d heads, %d on the fast path", n, fast)
}
