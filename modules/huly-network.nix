# services.huly-network: the Huly Virtual Network server.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.huly-network;
  hl = import ./lib.nix { inherit lib; };
  inherit (lib) mkOption types;
  format = pkgs.formats.json { };

  listen = hl.tcpListenOf cfg.settings.listen;
  metrics = hl.tcpListenOf cfg.settings.metrics_listen;
  # With socket activation PID 1 binds the main port, so only the metrics
  # port can call for a capability.
  ownListeners =
    lib.optional (!cfg.socketActivation) listen ++ lib.optional (metrics != null) metrics;
  ns = hl.durationToNs;
in
{
  imports = [
    ./ports.nix
    ./huly-network-security.nix
  ];

  options.services.huly-network = {
    enable = lib.mkEnableOption "huly-network, the Huly Virtual Network server";

    package = lib.mkPackageOption pkgs "huly-net" { };

    settings = mkOption {
      default = { };
      description = ''
        The server's JSON configuration (passed with `--config`). The keys
        below are typed and documented; any other key is written as given.
      '';
      example = {
        listen = "tcp://*:3737";
        alive_timeout = "5s";
        metrics_listen = "127.0.0.1:9137";
      };
      type = types.submodule {
        freeformType = format.type;
        options = {
          listen = mkOption {
            type = hl.zmqEndpoint;
            default = "tcp://*:3737";
            description = "ZeroMQ endpoint the server listens on (`*` for all addresses).";
          };
          alive_timeout = mkOption {
            type = hl.duration;
            default = "3s";
            description = "A client or agent silent for this long is considered gone.";
          };
          unused_timeout = mkOption {
            type = hl.duration;
            default = "5s";
            description = "A container nobody references is terminated after this long.";
          };
          ping_interval = mkOption {
            type = hl.duration;
            default = "1s";
            description = "Interval of the server's pings; must be shorter than `alive_timeout`.";
          };
          handshake_timeout = mkOption {
            type = hl.duration;
            default = "5s";
            description = "A connection that has not completed the ZMTP handshake by then is closed.";
          };
          max_frame_size = mkOption {
            type = types.ints.between 1024 9007199254740991;
            default = 67108864;
            description = "Largest accepted frame in bytes; a larger frame header closes the connection.";
          };
          max_inflight = mkOption {
            type = types.ints.positive;
            default = 1024;
            description = "Requests one client may have in flight before it is told to retry.";
          };
          send_queue = mkOption {
            type = types.ints.positive;
            default = 4096;
            description = "Messages queued per peer; a peer whose queue is full is disconnected.";
          };
          metrics_listen = mkOption {
            type = hl.optionalHostPort;
            default = "";
            example = "127.0.0.1:9137";
            description = "Address of the Prometheus metrics endpoint; empty for none. Never opened in the firewall.";
          };
        }
        // hl.loggingOptions;
      };
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      description = "The JSON file generated from `settings`.";
    };

    socketActivation = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Let systemd own the listening socket (`huly-network.socket`), so
        clients that connect while the server restarts are not refused, and
        a port below 1024 needs no capability.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the listen port in the firewall (the metrics port stays closed).";
    };

    extraArgs = hl.extraArgsOption;

    watchdogSec = hl.watchdogOption;
  };

  config = lib.mkMerge [
    { services.huly-network.configFile = format.generate "huly-network.json" cfg.settings; }

    (lib.mkIf cfg.enable {
      assertions = [
        {
          assertion = ns cfg.settings.ping_interval < ns cfg.settings.alive_timeout;
          message = "services.huly-network.settings.ping_interval (${cfg.settings.ping_interval}) must be shorter than alive_timeout (${cfg.settings.alive_timeout}), or every peer looks dead between two pings.";
        }
      ]
      ++ map (key: {
        assertion = ns cfg.settings.${key} > 0;
        message = "services.huly-network.settings.${key} must be greater than 0 (the server refuses to start otherwise).";
      }) [
        "alive_timeout"
        "unused_timeout"
        "ping_interval"
        "handshake_timeout"
      ];

      services.huly-net.listeners = [
        {
          owner = "services.huly-network.settings.listen";
          inherit (listen) host port;
        }
      ]
      ++ lib.optional (metrics != null) {
        owner = "services.huly-network.settings.metrics_listen";
        inherit (metrics) host port;
      };

      networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall listen.port;

      systemd.services.huly-network = {
        description = "Huly Virtual Network server";
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ] ++ lib.optional cfg.socketActivation "huly-network.socket";
        requires = lib.optional cfg.socketActivation "huly-network.socket";
        serviceConfig =
          hl.notifyService cfg.watchdogSec
          // hl.strictHardening
          // hl.bindCapabilities ownListeners
          // {
            ExecStart = hl.execStart cfg.package "huly-network" cfg.configFile cfg.extraArgs;
          };
      };

      systemd.sockets.huly-network = lib.mkIf cfg.socketActivation {
        description = "Huly Virtual Network server socket";
        wantedBy = [ "sockets.target" ];
        listenStreams = [ (hl.listenStreamOf cfg.settings.listen) ];
        socketConfig = {
          Backlog = 4096;
          NoDelay = true;
        };
      };
    })
  ];
}
