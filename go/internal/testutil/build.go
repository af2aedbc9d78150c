package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildBinary builds the Go package in pkgDir (relative to the caller's
// package directory, e.g. ".") as dir/name, with -race when the test binary
// itself has it. Tests that run real daemons call it from TestMain, outside
// -short (the Nix build's check phase runs -short with cgo off).
func BuildBinary(pkgDir, dir, name string) (string, error) {
	out := filepath.Join(dir, name)
	// The go command that runs the tests sets GOROOT for them; use its
	// toolchain rather than whichever go comes first in PATH.
	goTool := "go"
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			goTool = p
		}
	}
	args := []string{"build", "-o", out}
	if RaceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(goTool, append(args, pkgDir)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkgDir, err, msg)
	}
	return out, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
