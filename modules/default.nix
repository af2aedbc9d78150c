# All huly-net NixOS modules: services.huly-network, services.huly-agent and
# services.huly-bridge. Each is disabled until its `enable` is set.
{
  imports = [
    ./huly-network.nix
    ./huly-agent.nix
    ./huly-bridge.nix
  ];
}
