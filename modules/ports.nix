# The TCP addresses the huly-net services listen on, collected from every
# huly-net module that is imported, so that two of them never claim the same
# port. Each huly-net module imports this file; the module system keeps one
# copy.
{ config, lib, ... }:
let
  hl = import ./lib.nix { inherit lib; };
  listeners = config.services.huly-net.listeners;

  show = l: "${l.owner} (${if l.host == "" then "*" else l.host}:${toString l.port})";
  indexed = lib.imap0 (i: l: l // { index = i; }) listeners;
  clashes = lib.concatMap (
    a: map (b: "${show a} and ${show b}") (lib.filter (b: b.index > a.index && hl.collides a b) indexed)
  ) indexed;
in
{
  options.services.huly-net.listeners = lib.mkOption {
    internal = true;
    default = [ ];
    description = "TCP listeners of the enabled huly-net services, for the collision check.";
    type = lib.types.listOf (
      lib.types.submodule {
        options = {
          owner = lib.mkOption {
            type = lib.types.str;
            description = "The option that asks for this listener.";
          };
          host = lib.mkOption {
            type = lib.types.str;
            description = "The address listened on; empty for all addresses.";
          };
          port = lib.mkOption {
            type = lib.types.port;
            description = "The TCP port.";
          };
        };
      }
    );
  };

  config.assertions = [
    {
      assertion = clashes == [ ];
      message = "huly-net: listen addresses collide: ${lib.concatStringsSep "; " clashes}";
    }
  ];
}
