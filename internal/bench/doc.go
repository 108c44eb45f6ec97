// Package bench is the measuring side of `credvault bench`: the load
// generators (wrk when installed, else credvault itself re-executed as a
// separate generator process, and the in-process fasthttp generator kept
// for comparison with earlier figures), the upstream that runs in its own
// process (plain HTTP, or TLS with HTTP/1.1 or HTTP/2 from a test CA), and
// the per-process CPU and memory readings from /proc that turn a load run
// into CPU µs per request of the serving process.
//
// Nothing here knows credvault's API: cmd/credvault builds the scenarios
// and hands this package URLs and headers.
package bench
