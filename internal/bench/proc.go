package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK)).
const clockTick = 10 * time.Millisecond

// ProcessCPU returns the CPU time (user + system) the process pid has used
// so far, from /proc/<pid>/stat (fields 14 and 15, proc(5)); with children,
// that of its live child processes too (nginx's workers under its master).
// The resolution is 10 ms, so a leg of several seconds reads it to better
// than 1%. Errors: no /proc (not Linux) or no such process.
func ProcessCPU(pid int, children bool) (time.Duration, error) {
	pids := []int{pid}
	if children {
		pids = append(pids, childPIDs(pid)...)
	}
	var total time.Duration
	for _, p := range pids {
		f, err := statFields(p)
		if err != nil {
			return 0, err
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14 (utime): index 11 after "pid (comm)"
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * clockTick
	}
	return total, nil
}

// statFields returns the fields of /proc/<pid>/stat after "pid (comm)";
// f[0] is field 3 (state), f[1] field 4 (ppid).
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, fmt.Errorf("bench: CPU of process %d: %w", pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("bench: /proc/%d/stat is unreadable", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return nil, fmt.Errorf("bench: /proc/%d/stat is unreadable", pid)
	}
	return f, nil
}

// childPIDs lists the live processes whose parent is pid.
func childPIDs(pid int) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	want := strconv.Itoa(pid)
	for _, d := range dirs {
		p, err := strconv.Atoi(filepath.Base(d))
		if err != nil || p == pid {
			continue
		}
		if f, err := statFields(p); err == nil && f[1] == want {
			out = append(out, p)
		}
	}
	return out
}

// ProcessRSS returns the resident memory of pid (and of its children) in
// bytes, from VmRSS in /proc/<pid>/status. Errors: as ProcessCPU.
func ProcessRSS(pid int, children bool) (int64, error) {
	pids := []int{pid}
	if children {
		pids = append(pids, childPIDs(pid)...)
	}
	var total int64
	for _, p := range pids {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			return 0, fmt.Errorf("bench: memory of process %d: %w", p, err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				total += kb << 10
			}
		}
		f.Close()
	}
	return total, nil
}

// Process names the process a leg's CPU is charged to: credvault's own
// (os.Getpid()), the upstream's, or nginx's master with its workers.
type Process struct {
	PID      int
	Children bool
}

// Watch runs fn and sets its Result's CPU (the process's CPU time during
// fn) and RSS (at the end). A process that cannot be read leaves both 0.
func Watch(p Process, fn func() (Result, error)) (Result, error) {
	before, errBefore := ProcessCPU(p.PID, p.Children)
	r, err := fn()
	if err != nil {
		return r, err
	}
	after, errAfter := ProcessCPU(p.PID, p.Children)
	if errBefore == nil && errAfter == nil {
		r.CPU = after - before
	}
	r.RSS, _ = ProcessRSS(p.PID, p.Children)
	return r, nil
}
