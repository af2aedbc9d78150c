# The NixOS module test suites. Evaluates to the list of failed tests ([] when
# everything passes), each named <suite>.<test>.
#   nix-instantiate --eval --strict --json tests/modules --arg nixpkgsLib /path/to/nixpkgs/lib
# nixpkgsLib is nixpkgs' lib directory (or an already imported lib). With
# `--arg count true` it evaluates to the number of tests instead.
{
  nixpkgsLib,
  count ? false,
}:
let
  lib = if builtins.isAttrs nixpkgsLib then nixpkgsLib else import nixpkgsLib;
  h = import ./harness.nix { inherit lib; };
  suites = {
    lib = import ./lib.nix { inherit lib; };
    network = import ./network.nix { inherit lib h; };
    agent = import ./agent.nix { inherit lib h; };
    bridge = import ./bridge.nix { inherit lib h; };
    units = import ./units.nix { inherit lib h; };
    security = import ./security.nix { inherit lib h; };
  };
in
if count then
  lib.foldl' (n: tests: n + builtins.length (builtins.attrNames tests)) 0 (lib.attrValues suites)
else
  lib.concatLists (
  lib.mapAttrsToList (
    suite: tests: map (f: f // { name = "${suite}.${f.name}"; }) (lib.runTests tests)
  ) suites
)
