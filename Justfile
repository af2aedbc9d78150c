# huly-net tasks. `just` itself: your distribution's package, Nix's `just`,
# or npm's rust-just-linux-x64 (it ships the binary without linking it:
# `npm install -g rust-just-linux-x64` then put
# "$(npm root -g)/rust-just-linux-x64/bin" on PATH).

set shell := ["bash", "-euo", "pipefail", "-c"]

# Recipe arguments reach the shell as "$@" as well, so a list of names is
# passed on unchanged, one argument each.
set positional-arguments

version := `git describe --tags --always --dirty 2>/dev/null || echo dev`
ldflags := "-X github.com/huly-net/huly-net/go/internal/version.Version=" + version

# List the recipes
default:
    @just --list --unsorted

# Build huly-network, huly-agent, huly-bridge, hulyctl and the example container program into ./bin
build:
    cd go && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags '{{ ldflags }}' -o ../bin/ ./cmd/... ./examples/echo-container
    @ls -1 bin

# The test command CI runs: every tier that can run on this machine
test:
    ./tests/run

# The real-systemd tier only (root; nspawn nodes), optionally some scenarios
test-systemd *SCENARIOS:
    ./tests/systemd/run "$@"

# Nix checks that run without nixpkgs (parse, module evaluation, vendor hash)
test-nix:
    ./tests/nix/check

# One NixOS VM test (needs Nix with KVM and network access)
vm-test NAME:
    nix --extra-experimental-features 'nix-command flakes' build ".#checks.x86_64-linux.$1" -L

# Manual pages of hulyctl and the daemons into DIR (default: ./man), from the built binaries
man DIR="man": build
    #!/usr/bin/env bash
    set -euo pipefail
    dir="$1"
    mkdir -p "$dir"
    bin/hulyctl man "$dir"
    # Each daemon on internal/daemon prints its own page.
    for d in huly-agent huly-bridge huly-network; do
        if bin/$d --man >"$dir/$d.1.tmp" 2>/dev/null; then
            mv "$dir/$d.1.tmp" "$dir/$d.1"
        else
            rm -f "$dir/$d.1.tmp"
            echo "$d: no --man (not on internal/daemon yet): page skipped" >&2
        fi
    done
    ls -1 "$dir"

# Format everything: treefmt through `nix fmt`, else gofmt + shfmt (as treefmt.nix: -i 2 -s)
fmt:
    #!/usr/bin/env bash
    set -euo pipefail
    if command -v nix >/dev/null && nix --extra-experimental-features 'nix-command flakes' fmt -- --version >/dev/null 2>&1; then
        exec nix --extra-experimental-features 'nix-command flakes' fmt
    fi
    echo "nix fmt unavailable (no Nix with flakes, or no nixpkgs): gofmt + shfmt" >&2
    gofmt -w go
    if command -v shfmt >/dev/null; then
        shfmt -f . | grep -v '^go/' | xargs -r shfmt -i 2 -s -w
    else
        echo "shfmt not installed (apt-get install shfmt): shell scripts left as they are" >&2
    fi

# Fail when anything is not formatted (same tools as fmt)
fmt-check:
    #!/usr/bin/env bash
    set -euo pipefail
    if command -v nix >/dev/null && nix --extra-experimental-features 'nix-command flakes' fmt -- --version >/dev/null 2>&1; then
        exec nix --extra-experimental-features 'nix-command flakes' fmt -- --fail-on-change
    fi
    echo "nix fmt unavailable (no Nix with flakes, or no nixpkgs): gofmt + shfmt" >&2
    bad=$(gofmt -l go)
    if [ -n "$bad" ]; then
        printf 'gofmt would change:\n%s\n' "$bad" >&2
        exit 1
    fi
    if command -v shfmt >/dev/null; then
        shfmt -f . | grep -v '^go/' | xargs -r shfmt -i 2 -s -d
    else
        echo "shfmt not installed (apt-get install shfmt): shell scripts not checked" >&2
        exit 1
    fi

# Benchmark matrix on loopback, printed as a Markdown report (not part of `just test`): [--baseline REF] [--quick] [--runs N] [--for D] [REPORT.md]
bench *ARGS:
    tests/bench/run "$@"

# One scale run of this tree: [--hog] [--pprof FILE] [CLIENTS CONTAINERS AGENTS [FOR]] (default 10000 100000 100 10s)
bench-scale *ARGS:
    tests/bench/scale --build "$@"

# Recompute nix/vendor-hash.json after go.mod/go.sum changed
vendor-hash *ARGS:
    ./nix/vendor-hash "$@"

# Build, boot and start dev containers (default: dev-network dev-agent1 dev-agent2; root)
dev-up *NAMES:
    ./tests/systemd/dev up "$@"

# Stop and remove dev containers (default: all of them)
dev-destroy *NAMES:
    ./tests/systemd/dev destroy "$@"

# Follow the huly-* journals of dev containers until Ctrl-C (default: all)
dev-logs *NAMES:
    ./tests/systemd/dev logs "$@"

# Destroy, rebuild and boot dev containers, then follow their logs until Ctrl-C
dev-cycle *NAMES:
    ./tests/systemd/dev cycle "$@"

# A root shell inside a dev container
dev-shell NAME:
    ./tests/systemd/dev shell "$@"
