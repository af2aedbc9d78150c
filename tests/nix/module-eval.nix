# checks.<system>.module-eval: tests/modules/run, the runner used offline,
# against the locked nixpkgs' lib, inside the build sandbox.
{
  lib,
  runCommand,
  nix,
  jq,
  nixpkgs,
}:
let
  src = lib.fileset.toSource {
    root = ../..;
    fileset = lib.fileset.unions [
      ../../modules
      ../../tests/modules
      ../../packaging/systemd
    ];
  };
in
runCommand "huly-net-module-eval"
  {
    nativeBuildInputs = [
      nix
      jq
    ];
  }
  ''
    # nix-instantiate wants state and configuration directories; give it
    # scratch ones (the evaluation reads files only, it builds nothing).
    export TEST_ROOT="$PWD/nix-test"
    export NIX_CONF_DIR="$TEST_ROOT/etc"
    export NIX_LOCALSTATE_DIR="$TEST_ROOT/var"
    export NIX_LOG_DIR="$TEST_ROOT/var/log/nix"
    export NIX_STATE_DIR="$TEST_ROOT/var/nix"
    export NIX_STORE_DIR="$TEST_ROOT/store"
    export PAGER=cat
    mkdir -p "$NIX_CONF_DIR"
    nix-store --init
    set -o pipefail
    NIXPKGS_LIB=${nixpkgs} bash ${src}/tests/modules/run | tee "$out"
  ''
