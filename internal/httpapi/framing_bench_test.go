package httpapi

import (
	"net"
	"testing"
)

// BenchmarkFramingGuard measures what the framing guard costs per request
// head (MB/s over the head's bytes): a proxied call as a workflow runner
// sends it, followed by a small JSON body. The guard reads every request
// on every route, so its cost is part of the proxy's hot path.
func BenchmarkFramingGuard(b *testing.B) {
	req := []byte("POST /v1/proxy/3f1c9a52-8d7e-4b0a-9c61-2f4e8a7b6d10/v1/charges?expand[]=customer HTTP/1.1\r\n" +
		"Host: credvault.internal:8080\r\nUser-Agent: workflow-runner/2.3\r\nAccept: application/json\r\n" +
		"Accept-Encoding: gzip\r\nContent-Type: application/json\r\nContent-Length: 28\r\n" +
		"X-API-Key: cv_live_35bSWUXwbMav13ZVB95QZNaLDf2cd5n6SV7ty7atu_2fywqC\r\n" +
		"X-Credvault-Workflow-Id: wf-8812\r\nX-Credvault-Node-Id: node-3\r\nTraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n" +
		`{"amount":1099,"curr":"usd"}`)
	c := &framingConn{}
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		c.ready = c.ready[:0]
		if r := c.feed(req); r != nil {
			b.Fatal(r)
		}
	}
}

// repeatConn is a connection whose every Read returns the same request
// head, as a keep-alive client sends one request after another.
type repeatConn struct {
	net.Conn
	head []byte
}

func (c repeatConn) Read(p []byte) (int, error) { return copy(p, c.head), nil }

// BenchmarkFramingConnGET is the framing guard as fasthttp reads through
// it, for the request a forward-auth gateway or a load generator sends to
// /v1/auth/check: a GET head that arrives whole in one read.
func BenchmarkFramingConnGET(b *testing.B) {
	head := []byte("GET /v1/auth/check HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" +
		"X-API-Key: cv_live_35bSWUXwbMav13ZVB95QZNaLDf2cd5n6SV7ty7atu_2fywqC\r\n\r\n")
	c := &framingConn{Conn: repeatConn{head: head}}
	p := make([]byte, readBufferSize)
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if n, err := c.Read(p); err != nil || n != len(head) {
			b.Fatal(n, err)
		}
	}
}
