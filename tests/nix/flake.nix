# Evaluates flake.nix's outputs offline with stand-in inputs (no nixpkgs
# package set, no treefmt-nix) and checks its wiring: the output names the
# project promises, the overlay and packages calling nix/package.nix, the
# NixOS module wrappers defaulting `package` to this flake's build, and the
# VM tests importing this repository's modules. Evaluates to [] when all hold.
#   nix-instantiate --eval --strict --json tests/nix/flake.nix \
#     --arg nixpkgsLib "$NIXPKGS_LIB/lib" -I huly-nixpkgs-lib="$NIXPKGS_LIB/lib"
{ nixpkgsLib }:
let
  lib = import nixpkgsLib;
  h = import ../modules/harness.nix { inherit lib; };
  lock = builtins.fromJSON (builtins.readFile ../../flake.lock);
  flakeFile = import ../../flake.nix;

  nixpkgs = {
    inherit lib;
    outPath = ./fake-nixpkgs;
  };
  treefmt-nix.lib.evalModule = pkgs: module: {
    config.build = {
      wrapper = {
        type = "derivation";
        name = "treefmt";
        outPath = "/nix/store/00000000000000000000000000000000-treefmt";
        inherit module;
      };
      check = _: {
        type = "derivation";
        name = "treefmt-check";
        outPath = "/nix/store/00000000000000000000000000000000-treefmt-check";
        inherit (pkgs.stdenv.hostPlatform) system;
      };
    };
  };
  flake = flakeFile.outputs {
    self = flake // {
      outPath = toString ../..;
    };
    inherit nixpkgs treefmt-nix;
  };

  # A NixOS-like evaluation of nixosModules.default on x86_64-linux.
  withModules =
    cfg:
    h.eval [
      { _module.args.pkgs = lib.mkForce (h.pkgs // { stdenv.hostPlatform.system = "x86_64-linux"; }); }
      flake.nixosModules.default
      cfg
    ];
  served = withModules {
    services.huly-network.enable = true;
    services.huly-agent.enable = true;
    services.huly-bridge.enable = true;
  };
  built = flake.packages.x86_64-linux.huly-net;

  vmTestNames = [
    "network-integration"
    "agent-failover"
    "bridge"
    "agent-nspawn"
  ];

  urlOf =
    o:
    "${o.type}:${o.owner}/${o.repo}" + lib.optionalString (o ? ref) "/${o.ref}";
in
lib.runTests {
  testInputsAreExactlyNixpkgsAndTreefmt = {
    expr = {
      names = lib.attrNames flakeFile.inputs;
      nixpkgs = flakeFile.inputs.nixpkgs.url;
      treefmt = flakeFile.inputs.treefmt-nix.url;
      follows = flakeFile.inputs.treefmt-nix.inputs.nixpkgs.follows;
    };
    expected = {
      names = [
        "nixpkgs"
        "treefmt-nix"
      ];
      nixpkgs = "github:nixos/nixpkgs/nixpkgs-unstable";
      treefmt = "github:numtide/treefmt-nix";
      follows = "nixpkgs";
    };
  };
  testLockOriginalsEqualFlakeUrls = {
    expr = {
      nixpkgs = urlOf lock.nodes.nixpkgs.original;
      treefmt = urlOf lock.nodes.treefmt-nix.original;
    };
    expected = {
      nixpkgs = flakeFile.inputs.nixpkgs.url;
      treefmt = flakeFile.inputs.treefmt-nix.url;
    };
  };
  testOutputNames = {
    expr = {
      top = lib.attrNames flake;
      packages = lib.mapAttrs (_: lib.attrNames) flake.packages;
      modules = lib.attrNames flake.nixosModules;
      checks = lib.mapAttrs (_: lib.attrNames) flake.checks;
      devShells = lib.mapAttrs (_: lib.attrNames) flake.devShells;
      formatter = lib.attrNames flake.formatter;
      overlays = lib.attrNames flake.overlays;
    };
    expected = {
      top = [
        "checks"
        "devShells"
        "formatter"
        "nixosModules"
        "overlays"
        "packages"
      ];
      packages = {
        aarch64-linux = [
          "default"
          "huly-net"
        ];
        x86_64-linux = [
          "default"
          "huly-net"
        ];
      };
      modules = [
        "default"
        "huly-agent"
        "huly-bridge"
        "huly-network"
      ];
      checks.x86_64-linux = [
        "agent-failover"
        "agent-nspawn"
        "bridge"
        "formatting"
        "huly-net"
        "module-eval"
        "network-integration"
      ];
      devShells = {
        aarch64-linux = [ "default" ];
        x86_64-linux = [ "default" ];
      };
      formatter = [
        "aarch64-linux"
        "x86_64-linux"
      ];
      overlays = [ "default" ];
    };
  };
  testPackageIsNixPackageNix = {
    expr = {
      inherit (built) name system;
      inherit (built.calledWith) version;
      same = flake.packages.x86_64-linux.default == built;
    };
    expected = {
      name = "package.nix";
      system = "x86_64-linux";
      version = "0.1.0";
      same = true;
    };
  };
  testModulesDefaultPackageToThisFlake = {
    expr = map (s: served.services.${s}.package == built) [
      "huly-network"
      "huly-agent"
      "huly-bridge"
    ];
    expected = [
      true
      true
      true
    ];
  };
  testModulesWrappedEvaluateCleanly = {
    expr = h.failed served;
    expected = [ ];
  };
  testModuleWrapperAloneWorks = {
    expr =
      (h.eval [
        { _module.args.pkgs = lib.mkForce (h.pkgs // { stdenv.hostPlatform.system = "aarch64-linux"; }); }
        flake.nixosModules.huly-bridge
      ]).services.huly-bridge.package
      == flake.packages.aarch64-linux.huly-net;
    expected = true;
  };
  testVmTestsImportTheirFileAndOurModules = {
    expr = map (
      n:
      let
        t = flake.checks.x86_64-linux.${n}.test;
      in
      {
        file = baseNameOf (toString (builtins.head t.imports));
        defaults = t.defaults.imports == [ flake.nixosModules.default ];
      }
    ) vmTestNames;
    expected = map (n: {
      file = "${n}.nix";
      defaults = true;
    }) vmTestNames;
  };
  testModuleEvalCheckGetsLockedNixpkgs = {
    expr = {
      inherit (flake.checks.x86_64-linux.module-eval) name;
      nixpkgs = flake.checks.x86_64-linux.module-eval.calledWith.nixpkgs == nixpkgs;
    };
    expected = {
      name = "module-eval.nix";
      nixpkgs = true;
    };
  };
  testFormattingAndPackageChecks = {
    expr = {
      formatting = flake.checks.x86_64-linux.formatting.name;
      package = flake.checks.x86_64-linux.huly-net == built;
    };
    expected = {
      formatting = "treefmt-check";
      package = true;
    };
  };
}
