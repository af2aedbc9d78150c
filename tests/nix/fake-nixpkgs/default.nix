# A stand-in for `import nixpkgs { system; overlays; }`, just enough for
# flake.nix's own wiring to evaluate offline (tests/nix/flake.nix):
# callPackage records what it was called with instead of building anything.
# nixpkgs' lib comes from the search path entry <huly-nixpkgs-lib>.
{
  system,
  overlays ? [ ],
}:
let
  lib = import <huly-nixpkgs-lib>;

  fakeDrv =
    name: extra:
    {
      type = "derivation";
      inherit name system;
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
    }
    // extra;

  base = {
    inherit lib;
    stdenv.hostPlatform.system = system;
    callPackage =
      fn: args:
      fakeDrv (baseNameOf (toString fn)) {
        calledWith = args;
      };
    testers.runNixOSTest = test: fakeDrv "vm-test" { inherit test; };
  };
in
lib.fix (final: lib.foldl' (acc: overlay: acc // overlay final acc) base overlays)
