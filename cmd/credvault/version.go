package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at link time by `make build`
// (-ldflags "-X main.version=$(git describe --tags --always --dirty)");
// without it, credvault reports the module version and VCS revision the Go
// toolchain stamped into the binary.
var version = ""

// versionLine is what `credvault version` prints: the version, then the Go
// release, platform and, when known, the commit and its time.
func versionLine() string {
	v, rev, when, dirty := version, "", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	line := fmt.Sprintf("credvault %s (%s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		line += ", commit " + rev
		if dirty {
			line += "+modified"
		}
		if when != "" {
			line += " of " + when
		}
	}
	return line + ")"
}
