// Package version holds the build's version string. It is set at link time by
// the one ldflag that both `just build` and nix/package.nix pass:
//
//	-X github.com/huly-net/huly-net/go/internal/version.Version=v0.1.0
package version

// Version is the huly-net release this binary was built from.
var Version = "dev"
