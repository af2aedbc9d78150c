{
  description = "huly-net: the Huly Virtual Network in Go, as systemd-native services";

  inputs = {
    nixpkgs.url = "github:nixos/nixpkgs/nixpkgs-unstable";
    treefmt-nix = {
      url = "github:numtide/treefmt-nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      treefmt-nix,
    }:
    let
      inherit (nixpkgs) lib;
      version = "0.1.0";
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];

      pkgsFor =
        system:
        import nixpkgs {
          inherit system;
          overlays = [ self.overlays.default ];
        };
      forAllSystems = f: lib.genAttrs systems (system: f (pkgsFor system));

      treefmtFor = pkgs: treefmt-nix.lib.evalModule pkgs ./treefmt.nix;

      # A module of modules/ whose `package` defaults to this flake's build
      # (for the host's system; other systems build it with their own pkgs).
      withPackage =
        service: file:
        { lib, pkgs, ... }:
        {
          _file = "${self}/flake.nix#nixosModules.${service}";
          imports = [ file ];
          config.services.${service}.package = lib.mkDefault (
            self.packages.${pkgs.stdenv.hostPlatform.system}.huly-net
              or (pkgs.callPackage ./nix/package.nix { inherit version; })
          );
        };

      # Every check in one place: the VM tests, the offline module tests,
      # formatting and the package itself (its check phase runs the -short
      # Go tests).
      checksFor =
        pkgs:
        let
          vmTest =
            name:
            pkgs.testers.runNixOSTest {
              imports = [ (./tests/vm + "/${name}.nix") ];
              defaults.imports = [ self.nixosModules.default ];
            };
        in
        {
          network-integration = vmTest "network-integration";
          agent-failover = vmTest "agent-failover";
          bridge = vmTest "bridge";
          agent-nspawn = vmTest "agent-nspawn";
          module-eval = pkgs.callPackage ./tests/nix/module-eval.nix { inherit nixpkgs; };
          formatting = (treefmtFor pkgs).config.build.check self;
          huly-net = pkgs.huly-net;
        };
    in
    {
      overlays.default = final: _prev: {
        huly-net = final.callPackage ./nix/package.nix { inherit version; };
      };

      packages = forAllSystems (pkgs: {
        inherit (pkgs) huly-net;
        default = pkgs.huly-net;
      });

      nixosModules = rec {
        huly-network = withPackage "huly-network" ./modules/huly-network.nix;
        huly-agent = withPackage "huly-agent" ./modules/huly-agent.nix;
        huly-bridge = withPackage "huly-bridge" ./modules/huly-bridge.nix;
        default = {
          imports = [
            huly-network
            huly-agent
            huly-bridge
          ];
        };
      };

      checks.x86_64-linux = checksFor (pkgsFor "x86_64-linux");

      devShells = forAllSystems (pkgs: {
        default = pkgs.callPackage ./nix/devshell.nix {
          treefmt = (treefmtFor pkgs).config.build.wrapper;
        };
      });

      formatter = forAllSystems (pkgs: (treefmtFor pkgs).config.build.wrapper);
    };
}
