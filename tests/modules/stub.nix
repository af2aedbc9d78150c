# A typed stub of the NixOS options the huly-net modules set, so that they can
# be evaluated with nixpkgs' lib alone (lib.evalModules), without nixpkgs'
# package set or NixOS. Types follow NixOS where merging matters: list
# options are `listOf`, so definitions from several modules concatenate, and
# unit settings merge as NixOS' `unitOption` does (lists concatenate, other
# values must agree).
{ lib, ... }:
let
  inherit (lib) mkOption types;

  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if lib.any (def: lib.isList def.value) defs' then
        lib.concatMap (def: lib.toList def.value) defs'
      else
        lib.mergeEqualOption loc defs';
  };

  strList = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };

  unitCommon = {
    enable = mkOption {
      type = types.bool;
      default = true;
    };
    description = mkOption {
      type = types.str;
      default = "";
    };
    documentation = strList;
    wantedBy = strList;
    requiredBy = strList;
    after = strList;
    before = strList;
    wants = strList;
    requires = strList;
    bindsTo = strList;
    partOf = strList;
    unitConfig = mkOption {
      type = types.attrsOf unitOption;
      default = { };
    };
  };

  service = types.submodule {
    options = unitCommon // {
      serviceConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      environment = mkOption {
        type = types.attrsOf (
          types.nullOr (
            types.oneOf [
              types.str
              types.path
              types.package
            ]
          )
        );
        default = { };
      };
      path = mkOption {
        type = types.listOf (types.either types.package types.str);
        default = [ ];
      };
      restartTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      reloadTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
    };
  };

  socket = types.submodule {
    options = unitCommon // {
      listenStreams = strList;
      socketConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
    };
  };

  portList = mkOption {
    type = types.listOf types.port;
    default = [ ];
  };
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };

    environment.etc = mkOption {
      type = types.attrsOf (
        types.submodule {
          options.source = mkOption {
            type = types.unspecified;
          };
        }
      );
      default = { };
    };

    systemd.services = mkOption {
      type = types.attrsOf service;
      default = { };
    };
    systemd.sockets = mkOption {
      type = types.attrsOf socket;
      default = { };
    };

    networking.firewall = {
      allowedTCPPorts = portList;
      interfaces = mkOption {
        type = types.attrsOf (types.submodule { options.allowedTCPPorts = portList; });
        default = { };
      };
    };

    security.polkit = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      extraConfig = mkOption {
        type = types.lines;
        default = "";
      };
    };

    users.users = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            isSystemUser = mkOption {
              type = types.bool;
              default = false;
            };
            group = mkOption {
              type = types.str;
              default = "";
            };
            description = mkOption {
              type = types.str;
              default = "";
            };
          };
        }
      );
      default = { };
    };
    users.groups = mkOption {
      type = types.attrsOf (types.submodule { });
      default = { };
    };

    # NixOS containers: `config` is a NixOS configuration of its own; here it
    # collects the definitions as one module, which the tests evaluate with
    # this same stub.
    containers = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            config = mkOption {
              type = types.deferredModule;
              default = { };
            };
            privateNetwork = mkOption {
              type = types.bool;
              default = false;
            };
            hostAddress = mkOption {
              type = types.nullOr types.str;
              default = null;
            };
            localAddress = mkOption {
              type = types.nullOr types.str;
              default = null;
            };
            autoStart = mkOption {
              type = types.bool;
              default = false;
            };
          };
        }
      );
      default = { };
    };
  };
}
