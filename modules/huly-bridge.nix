# services.huly-bridge: TCP/unix port forwarders, one unit per forward
# (huly-bridge-<name>.service), and a generator that brings a port of a NixOS
# container with private networking to the host from one declaration:
#   services.huly-bridge.containers.<machine>.ports.<name>
# makes the relay inside the container (containers.<machine>.config) and the
# host forward to it.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.huly-bridge;
  hl = import ./lib.nix { inherit lib; };
  inherit (lib) mkOption types;
  format = pkgs.formats.json { };

  # Forward names become unit names and socket file descriptor names.
  validName = n: builtins.match "[A-Za-z0-9_-]+" n != null;

  joinHostPort = host: port: if lib.hasInfix ":" host then "[${host}]:${toString port}" else "${host}:${toString port}";

  forwardSettings = types.submodule {
    freeformType = format.type;
    options = {
      max_connections = mkOption {
        type = types.ints.positive;
        default = 1024;
        description = "Most connections at once; further ones are closed at once and counted.";
      };
      idle_timeout = mkOption {
        type = hl.duration;
        default = "5m";
        description = "A connection with no traffic either way for this long is closed.";
      };
      dial_timeout = mkOption {
        type = hl.duration;
        default = "5s";
        description = "Timeout of one attempt to reach the target.";
      };
      dial_retries = mkOption {
        type = types.ints.unsigned;
        default = 5;
        description = "Further attempts, with backoff, before a connection is given up.";
      };
    };
  };

  forwardModule =
    { name, config, ... }:
    {
      options = {
        listen = mkOption {
          type = hl.bridgeAddress;
          example = "tcp:127.0.0.1:8080";
          description = "Where the forward accepts connections: `tcp:HOST:PORT` or `unix:/PATH`.";
        };
        target = mkOption {
          type = hl.bridgeAddress;
          example = "tcp:10.233.1.2:80";
          description = "Where each connection is forwarded to: `tcp:HOST:PORT` or `unix:/PATH`.";
        };
        settings = mkOption {
          type = forwardSettings;
          default = { };
          description = "This forward's JSON settings; any key not listed here is written as given.";
        };
        metricsListen = mkOption {
          type = hl.optionalHostPort;
          default = "";
          description = "Address of this unit's Prometheus metrics endpoint; empty for none.";
        };
        socketActivation = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Let systemd own the listener (`huly-bridge-<name>.socket`, passed
            as the file descriptor named after the forward), so connections
            made while the bridge restarts wait instead of being refused.
          '';
        };
        openFirewall = mkOption {
          type = types.bool;
          default = cfg.openFirewall;
          defaultText = lib.literalExpression "config.services.huly-bridge.openFirewall";
          description = "Open this forward's TCP listen port in the firewall.";
        };
        configFile = mkOption {
          type = types.path;
          readOnly = true;
          description = "The JSON file generated for this forward's unit.";
        };
      };
      config.configFile = format.generate "huly-bridge-${name}.json" (
        cfg.settings
        // {
          forwards.${name} = {
            inherit (config) listen target;
          }
          // config.settings;
          metrics_listen = config.metricsListen;
        }
      );
    };

  portModule = {
    options = {
      servicePort = mkOption {
        type = types.port;
        description = "The port the service listens on inside the container.";
      };
      serviceAddress = mkOption {
        type = types.str;
        default = "127.0.0.1";
        description = "The address the service listens on inside the container.";
      };
      relayPort = mkOption {
        type = types.nullOr types.port;
        default = null;
        description = "Port of the relay inside the container; `null` for the service's port.";
      };
      relayAddress = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = ''
          Address of the relay inside the container; `null` for the
          container's own address, which the container has before its
          services start, so the relay can share the service's port.
        '';
      };
      hostPort = mkOption {
        type = types.port;
        description = "The port on the host that reaches the service.";
      };
      hostAddress = mkOption {
        type = types.str;
        default = "127.0.0.1";
        description = "The host address to listen on.";
      };
      openFirewall = mkOption {
        type = types.bool;
        default = false;
        description = "Open `hostPort` in the host's firewall.";
      };
      settings = mkOption {
        type = forwardSettings;
        default = { };
        description = "JSON settings of both tiers' forwards.";
      };
    };
  };

  containerModule = {
    options = {
      address = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = ''
          The container's address as the host reaches it; `null` for
          `containers.<machine>.localAddress` without its prefix length.
        '';
      };
      ports = mkOption {
        type = types.attrsOf (types.submodule portModule);
        default = { };
        description = "Ports of the container to bring to the host, by name.";
      };
    };
  };

  containerAddress =
    machine: c:
    if c.address != null then
      c.address
    else
      let
        local = config.containers.${machine}.localAddress or null;
      in
      if local == null then null else hl.stripPrefixLength local;

  relayPortOf = p: if p.relayPort == null then p.servicePort else p.relayPort;
  relayAddressOf =
    machine: c: p:
    if p.relayAddress == null then containerAddress machine c else p.relayAddress;

  # The host tier of every container port, named <machine>-<port name>.
  generatedForwards = lib.concatMapAttrs (
    machine: c:
    lib.mapAttrs' (
      pname: p:
      lib.nameValuePair "${machine}-${pname}" {
        listen = "tcp:${joinHostPort p.hostAddress p.hostPort}";
        target = "tcp:${joinHostPort (containerAddress machine c) (relayPortOf p)}";
        inherit (p) settings openFirewall;
      }
    ) c.ports
  ) cfg.containers;

  # The container tier: this module again, inside the container, relaying
  # from the container's address to the service on its loopback.
  generatedContainers = lib.mapAttrs (machine: c: {
    config = {
      imports = [ ./huly-bridge.nix ];
      services.huly-bridge = {
        enable = true;
        package = lib.mkDefault cfg.package;
        settings = lib.mapAttrs (_: lib.mkDefault) cfg.settings;
        watchdogSec = lib.mkDefault cfg.watchdogSec;
        forwards = lib.mapAttrs (_: p: {
          listen = "tcp:${joinHostPort (relayAddressOf machine c p) (relayPortOf p)}";
          target = "tcp:${joinHostPort p.serviceAddress p.servicePort}";
          inherit (p) settings;
        }) c.ports;
      };
      networking.firewall.interfaces.eth0.allowedTCPPorts = lib.mapAttrsToList (
        _: relayPortOf
      ) c.ports;
    };
  }) (lib.filterAttrs (_: c: c.ports != { }) cfg.containers);

  containerAssertions = lib.concatLists (
    lib.mapAttrsToList (
      machine: c:
      [
        {
          assertion = c.ports == { } || containerAddress machine c != null;
          message = "services.huly-bridge.containers.${machine}: the container's address is unknown; set containers.${machine}.localAddress (privateNetwork) or services.huly-bridge.containers.${machine}.address.";
        }
      ]
      ++ lib.mapAttrsToList (pname: p: {
        # An unknown container address is reported by the assertion above.
        assertion =
          let
            relay = hl.tcpListenOf "tcp:${joinHostPort (relayAddressOf machine c p) (relayPortOf p)}";
            service = hl.tcpListenOf "tcp:${joinHostPort p.serviceAddress p.servicePort}";
          in
          containerAddress machine c == null
          || relay == null
          || service == null
          || !(hl.collides relay service);
        message = "services.huly-bridge.containers.${machine}.ports.${pname}: the relay would listen where the service does (port ${toString (relayPortOf p)}); set relayPort or keep relayAddress on the container's own address.";
      }) c.ports
    ) cfg.containers
  );

  ownListeners =
    f:
    lib.optional (!f.socketActivation) (hl.tcpListenOf f.listen)
    ++ lib.optional (f.metricsListen != "") (hl.tcpListenOf f.metricsListen);

  isUnix = a: lib.hasPrefix "unix:" a;
in
{
  imports = [ ./ports.nix ];

  options.services.huly-bridge = {
    enable = lib.mkEnableOption "huly-bridge, the Huly port bridge";

    package = lib.mkPackageOption pkgs "huly-net" { };

    settings = mkOption {
      default = { };
      description = ''
        JSON settings shared by every forward's unit (the forward itself comes
        from `forwards.<name>`). The keys below are typed and documented; any
        other key is written as given.
      '';
      type = types.submodule {
        freeformType = format.type;
        options = {
          drain_timeout = mkOption {
            type = hl.duration;
            default = "10s";
            description = "After SIGTERM, active connections may finish for this long.";
          };
        }
        // hl.loggingOptions;
      };
    };

    forwards = mkOption {
      type = types.attrsOf (types.submodule forwardModule);
      default = { };
      example = {
        web = {
          listen = "tcp:127.0.0.1:8080";
          target = "tcp:10.233.1.2:80";
        };
      };
      description = "Forwards by name; each runs as its own unit `huly-bridge-<name>.service`.";
    };

    containers = mkOption {
      type = types.attrsOf (types.submodule containerModule);
      default = { };
      example = {
        web.ports.http = {
          servicePort = 8000;
          hostPort = 18000;
        };
      };
      description = ''
        Ports of NixOS containers (`containers.<machine>`, usually with
        `privateNetwork`) to bring to the host. Each port makes two forwards:
        inside the container, the container's address to the service on its
        loopback; on the host, `hostAddress:hostPort` to that relay (forward
        `<machine>-<name>`).
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Default of `forwards.<name>.openFirewall`.";
    };

    extraArgs = hl.extraArgsOption;

    watchdogSec = hl.watchdogOption;
  };

  config = lib.mkIf cfg.enable {
    assertions =
      lib.mapAttrsToList (name: _: {
        assertion = validName name;
        message = "services.huly-bridge.forwards.${name}: a forward's name may contain only letters, digits, '-' and '_' (it names a unit and a file descriptor).";
      }) cfg.forwards
      ++ [
        {
          assertion = !(cfg.settings ? forwards);
          message = "services.huly-bridge.settings.forwards is not used; declare services.huly-bridge.forwards.<name> instead.";
        }
      ]
      ++ containerAssertions;

    services.huly-bridge.forwards = generatedForwards;

    containers = generatedContainers;

    services.huly-net.listeners = lib.concatLists (
      lib.mapAttrsToList (
        name: f:
        lib.optional (!f.socketActivation && hl.tcpListenOf f.listen != null) (
          {
            owner = "services.huly-bridge.forwards.${name}.listen";
          }
          // hl.tcpListenOf f.listen
        )
        ++ lib.optional (f.metricsListen != "") (
          {
            owner = "services.huly-bridge.forwards.${name}.metricsListen";
          }
          // hl.tcpListenOf f.metricsListen
        )
      ) cfg.forwards
    );

    networking.firewall.allowedTCPPorts = lib.concatLists (
      lib.mapAttrsToList (
        _: f: lib.optional (f.openFirewall && !isUnix f.listen) (hl.tcpListenOf f.listen).port
      ) cfg.forwards
    );

    systemd.services = lib.mapAttrs' (
      name: f:
      lib.nameValuePair "huly-bridge-${name}" {
        description = "Huly port bridge ${name}";
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ] ++ lib.optional f.socketActivation "huly-bridge-${name}.socket";
        requires = lib.optional f.socketActivation "huly-bridge-${name}.socket";
        serviceConfig =
          hl.notifyService cfg.watchdogSec
          // hl.strictHardening
          // hl.bindCapabilities (ownListeners f)
          // {
            ExecStart = hl.execStart cfg.package "huly-bridge" f.configFile cfg.extraArgs;
            # The one writable place, for forwards that listen on a unix socket.
            RuntimeDirectory = "huly-bridge/${name}";
          };
      }
    ) cfg.forwards;

    systemd.sockets = lib.mapAttrs' (
      name: f:
      lib.nameValuePair "huly-bridge-${name}" {
        description = "Huly port bridge ${name} socket";
        wantedBy = [ "sockets.target" ];
        listenStreams = [ (hl.listenStreamOf f.listen) ];
        socketConfig = {
          FileDescriptorName = name;
          Service = "huly-bridge-${name}.service";
          Backlog = 4096;
        }
        // lib.optionalAttrs (isUnix f.listen) { SocketMode = "0660"; };
      }
    ) (lib.filterAttrs (_: f: f.socketActivation) cfg.forwards);
  };
}
