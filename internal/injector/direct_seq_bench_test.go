package injector

import (
	"os"
	"testing"

	"credvault/internal/bench"
	"credvault/internal/credvault"
)

// BenchmarkDirectSequential is Client.Do's keep-alive GET to an upstream
// in another process one call at a time: a lightly loaded proxy, where
// every answer comes after the request is written and nothing else is
// ready to run meanwhile. It reports this process's CPU per call
// (cpu-µs/op, from /proc) and its read system calls per call (reads/op,
// syscr of /proc/self/io; TestDirectReadsAnswerOnce holds it to 1).
func BenchmarkDirectSequential(b *testing.B) {
	up := processUpstream(b)
	defer up.Stop()
	url := "http://" + up.HTTP + "/v1/balance"
	client := NewClient(ClientOptions{AllowPrivate: true})
	defer client.CloseIdleConnections()
	cred, value := credential("bearer", "", "", up.HTTP), credvault.NewSecret(testValue)
	call := func() error { return getThrough(client, url, cred, value) }
	if err := call(); err != nil { // the connection is dialed and kept
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0, _ := bench.ProcessCPU(os.Getpid(), false)
	reads0, _ := readCalls()
	b.ResetTimer()
	for range b.N {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu1, _ := bench.ProcessCPU(os.Getpid(), false)
	reads1, _ := readCalls()
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(reads1-reads0)/float64(b.N), "reads/op")
}
