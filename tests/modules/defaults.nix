# The JSON configuration each NixOS module writes when nothing is set (the
# bridge: one forward), for tests/modules/run to compare with what the
# daemons print with --print-defaults.
{ nixpkgsLib }:
let
  lib = if builtins.isAttrs nixpkgsLib then nixpkgsLib else import nixpkgsLib;
  h = import ./harness.nix { inherit lib; };
  with' = module: name: cfg: h.eval [
    module
    { services.${name} = { enable = true; } // cfg; }
  ];
in
{
  huly-network = h.json (with' h.modules.network "huly-network" { }).services.huly-network.configFile;
  huly-agent = h.json (with' h.modules.agent "huly-agent" { }).services.huly-agent.configFile;
  huly-bridge = h.json
    (with' h.modules.bridge "huly-bridge" {
      forwards.web = {
        listen = "tcp:127.0.0.1:8080";
        target = "tcp:127.0.0.1:80";
      };
    }).services.huly-bridge.forwards.web.configFile;
}
