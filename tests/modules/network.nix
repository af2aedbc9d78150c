# services.huly-network
{ lib, h }:
let
  withNetwork = cfg: h.eval [
    h.modules.network
    { services.huly-network = { enable = true; } // cfg; }
  ];
  defaults = withNetwork { };
  unit = c: c.systemd.services.huly-network;
  sc = c: (unit c).serviceConfig;
  conf = c: h.json c.services.huly-network.configFile;

  custom = withNetwork {
    settings = {
      listen = "tcp://127.0.0.1:4000";
      alive_timeout = "10s";
      metrics_listen = "127.0.0.1:9137";
      log_format = "json";
      future_key = "kept";
    };
    openFirewall = true;
    extraArgs = [
      "--log-level"
      "debug"
    ];
    watchdogSec = null;
  };
  socket = withNetwork {
    socketActivation = true;
    settings.listen = "tcp://127.0.0.1:4000";
  };
  lowPort = withNetwork { settings.listen = "tcp://*:443"; };
  lowPortSocket = withNetwork {
    socketActivation = true;
    settings.listen = "tcp://*:443";
  };
in
{
  testDefaultsNoAssertionFails = {
    expr = h.failed defaults;
    expected = [ ];
  };
  testDefaultsConfigIsTheContract = {
    expr = conf defaults;
    expected = {
      listen = "tcp://*:3737";
      alive_timeout = "3s";
      unused_timeout = "5s";
      ping_interval = "1s";
      max_frame_size = 67108864;
      max_inflight = 1024;
      handshake_timeout = "5s";
      send_queue = 4096;
      metrics_listen = "";
      log_level = "info";
      log_format = "auto";
    };
  };
  testDefaultsUnitIsNotify = {
    expr = {
      inherit (sc defaults)
        Type
        NotifyAccess
        Restart
        WatchdogSec
        DynamicUser
        CapabilityBoundingSet
        PrivateUsers
        ;
    };
    expected = {
      Type = "notify";
      NotifyAccess = "main";
      Restart = "on-failure";
      WatchdogSec = "30s";
      DynamicUser = true;
      CapabilityBoundingSet = "";
      PrivateUsers = true;
    };
  };
  testDefaultsExecStartRunsBinaryDirectly = {
    expr = h.words (sc defaults).ExecStart;
    expected = [
      "${h.pkgs.huly-net}/bin/huly-network"
      "--config"
      "${defaults.services.huly-network.configFile}"
    ];
  };
  testDefaultsWantedAtBoot = {
    expr = (unit defaults).wantedBy;
    expected = [ "multi-user.target" ];
  };
  testDefaultsNoSocketNoFirewall = {
    expr = {
      sockets = defaults.systemd.sockets;
      ports = defaults.networking.firewall.allowedTCPPorts;
    };
    expected = {
      sockets = { };
      ports = [ ];
    };
  };
  testDefaultsRegistersListener = {
    expr = defaults.services.huly-net.listeners;
    expected = [
      {
        owner = "services.huly-network.settings.listen";
        host = "";
        port = 3737;
      }
    ];
  };

  testDisabledDefinesNothing = {
    expr =
      let
        c = h.eval [ h.modules.network ];
      in
      {
        services = c.systemd.services;
        sockets = c.systemd.sockets;
        ports = c.networking.firewall.allowedTCPPorts;
        listeners = c.services.huly-net.listeners;
        failed = h.failed c;
      };
    expected = {
      services = { };
      sockets = { };
      ports = [ ];
      listeners = [ ];
      failed = [ ];
    };
  };

  testSettingsRenderedWithFreeformKeys = {
    expr = {
      inherit (conf custom)
        listen
        alive_timeout
        metrics_listen
        log_format
        future_key
        ping_interval
        ;
    };
    expected = {
      listen = "tcp://127.0.0.1:4000";
      alive_timeout = "10s";
      metrics_listen = "127.0.0.1:9137";
      log_format = "json";
      future_key = "kept";
      ping_interval = "1s";
    };
  };
  testExtraArgsAppended = {
    expr = lib.drop 3 (h.words (sc custom).ExecStart);
    expected = [
      "--log-level"
      "debug"
    ];
  };
  testWatchdogCanBeTurnedOff = {
    expr = (sc custom) ? WatchdogSec;
    expected = false;
  };
  testFirewallOpensListenPortOnly = {
    expr = custom.networking.firewall.allowedTCPPorts;
    expected = [ 4000 ];
  };
  testMetricsListenerRegistered = {
    expr = map (l: l.port) custom.services.huly-net.listeners;
    expected = [
      4000
      9137
    ];
  };

  testSocketActivationMakesSocket = {
    expr = {
      inherit (socket.systemd.sockets.huly-network) listenStreams wantedBy;
      inherit (socket.systemd.sockets.huly-network.socketConfig) Backlog;
      requires = (unit socket).requires;
    };
    expected = {
      listenStreams = [ "127.0.0.1:4000" ];
      wantedBy = [ "sockets.target" ];
      Backlog = 4096;
      requires = [ "huly-network.socket" ];
    };
  };
  testSocketActivationAllAddresses = {
    expr =
      (withNetwork {
        socketActivation = true;
        settings.listen = "tcp://[::1]:3737";
      }).systemd.sockets.huly-network.listenStreams;
    expected = [ "[::1]:3737" ];
  };

  testLowPortGetsBindCapabilityOnly = {
    expr = {
      inherit (sc lowPort) CapabilityBoundingSet AmbientCapabilities PrivateUsers;
    };
    expected = {
      CapabilityBoundingSet = "CAP_NET_BIND_SERVICE";
      AmbientCapabilities = "CAP_NET_BIND_SERVICE";
      PrivateUsers = false;
    };
  };
  testLowPortWithSocketNeedsNoCapability = {
    expr = {
      inherit (sc lowPortSocket) CapabilityBoundingSet AmbientCapabilities PrivateUsers;
    };
    expected = {
      CapabilityBoundingSet = "";
      AmbientCapabilities = "";
      PrivateUsers = true;
    };
  };

  testAssertPingShorterThanAlive = {
    expr = h.failsWith "ping_interval (5s) must be shorter than alive_timeout (3s)" (withNetwork {
      settings.ping_interval = "5s";
    });
    expected = true;
  };
  testAssertPingIntervalCompareUnits = {
    expr = h.failed (withNetwork {
      settings = {
        ping_interval = "900ms";
        alive_timeout = "1s";
      };
    });
    expected = [ ];
  };
  testAssertDurationsPositive = {
    expr = map (k: h.failsWith "settings.${k} must be greater than 0" (withNetwork { settings.${k} = "0"; })) [
      "alive_timeout"
      "unused_timeout"
      "ping_interval"
      "handshake_timeout"
    ];
    expected = [
      true
      true
      true
      true
    ];
  };
  testAssertMetricsPortCollides = {
    expr = h.failsWith "listen addresses collide" (withNetwork { settings.metrics_listen = ":3737"; });
    expected = true;
  };
  testMetricsOnOtherAddressSamePortCollidesWithWildcard = {
    expr = h.failsWith "collide" (withNetwork { settings.metrics_listen = "127.0.0.1:3737"; });
    expected = true;
  };

  testTypeErrorListenWithoutScheme = {
    expr = h.throws (conf (withNetwork { settings.listen = "3737"; })).listen;
    expected = true;
  };
  testTypeErrorDuration = {
    expr = h.throws (conf (withNetwork { settings.alive_timeout = "3 seconds"; })).alive_timeout;
    expected = true;
  };
  testTypeErrorLogLevel = {
    expr = h.throws (conf (withNetwork { settings.log_level = "loud"; })).log_level;
    expected = true;
  };
  testTypeErrorFrameSize = {
    expr = map (n: h.throws (conf (withNetwork { settings.max_frame_size = n; })).max_frame_size) [
      (-1)
      1023
      1024
    ];
    expected = [
      true
      true
      false
    ];
  };
  testConfigFileIsReadOnly = {
    expr = h.throws "${(withNetwork { configFile = "/etc/huly-network.json"; }).services.huly-network.configFile}";
    expected = true;
  };
  testValidSettingsDoNotThrow = {
    expr = h.throws (conf custom);
    expected = false;
  };
}
