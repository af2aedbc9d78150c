# The NixOS module test suites. Evaluates to the list of failed tests ([] when
# everything passes), each named <suite>.<test>.
#   nix-instantiate --eval --strict --json tests/modules --arg nixpkgsLib /path/to/nixpkgs/lib
# nixpkgsLib is nixpkgs' lib directory (or an already imported lib).
{ nixpkgsLib }:
let
  lib = if builtins.isAttrs nixpkgsLib then nixpkgsLib else import nixpkgsLib;
  h = import ./harness.nix { inherit lib; };
  suites = {
    lib = import ./lib.nix { inherit lib; };
    network = import ./network.nix { inherit lib h; };
  };
in
lib.concatLists (
  lib.mapAttrsToList (
    suite: tests: map (f: f // { name = "${suite}.${f.name}"; }) (lib.runTests tests)
  ) suites
)
