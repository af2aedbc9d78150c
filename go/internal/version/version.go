// Package version holds the build's version string. It is set at link time by
// the one ldflag that both `just build` and nix/package.nix pass:
//
//	-X github.com/huly-net/huly-net/go/internal/version.Version=v0.1.0
//
// Without it (go install, go build), String reads Go's build information:
// the module version, or the VCS revision the binary was built from.
package version

import (
	"runtime/debug"
	"sync"
)

// Version is the huly-net release this binary was built from.
var Version = "dev"

var fromBuildInfo = sync.OnceValue(func() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	return describe(info)
})

// String is Version when stamped, else what Go's build information says.
func String() string {
	if Version != "dev" {
		return Version
	}
	return fromBuildInfo()
}

func describe(info *debug.BuildInfo) string {
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return Version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := "dev-" + rev
	if modified == "true" {
		v += "-dirty"
	}
	return v
}
