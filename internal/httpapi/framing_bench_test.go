package httpapi

import "testing"

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
