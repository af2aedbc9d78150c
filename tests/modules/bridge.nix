# services.huly-bridge, including the two-tier container generator.
{ lib, h }:
let
  withBridge = cfg: h.eval [
    h.modules.bridge
    { services.huly-bridge = { enable = true; } // cfg; }
  ];
  web = {
    listen = "tcp:127.0.0.1:8080";
    target = "tcp:10.233.1.2:80";
  };
  basic = withBridge { forwards.web = web; };
  sc = c: name: c.systemd.services."huly-bridge-${name}".serviceConfig;
  conf = c: name: h.json c.services.huly-bridge.forwards.${name}.configFile;

  # One declaration, two tiers: a container with private networking whose
  # service listens on its loopback.
  twoTier = h.eval [
    h.modules.bridge
    {
      containers.svc = {
        privateNetwork = true;
        hostAddress = "10.233.1.1";
        localAddress = "10.233.1.2/24";
      };
      services.huly-bridge = {
        enable = true;
        settings.log_level = "debug";
        containers.svc.ports.http = {
          servicePort = 8000;
          hostPort = 18000;
          settings.idle_timeout = "1m";
        };
      };
    }
  ];
  inner = h.eval [ twoTier.containers.svc.config ];
in
{
  testBasicNoAssertionFails = {
    expr = h.failed basic;
    expected = [ ];
  };
  testBasicConfigIsTheContract = {
    expr = conf basic "web";
    expected = {
      forwards.web = {
        listen = "tcp:127.0.0.1:8080";
        target = "tcp:10.233.1.2:80";
        max_connections = 1024;
        idle_timeout = "5m";
        dial_timeout = "5s";
        dial_retries = 5;
      };
      metrics_listen = "";
      drain_timeout = "10s";
      log_level = "info";
      log_format = "auto";
    };
  };
  testBasicUnitPerForward = {
    expr = {
      units = lib.attrNames basic.systemd.services;
      inherit (sc basic "web")
        Type
        NotifyAccess
        DynamicUser
        RuntimeDirectory
        CapabilityBoundingSet
        PrivateUsers
        ;
      exec = h.words (sc basic "web").ExecStart;
    };
    expected = {
      units = [ "huly-bridge-web" ];
      Type = "notify";
      NotifyAccess = "main";
      DynamicUser = true;
      RuntimeDirectory = "huly-bridge/web";
      CapabilityBoundingSet = "";
      PrivateUsers = true;
      exec = [
        "${h.pkgs.huly-net}/bin/huly-bridge"
        "--config"
        "${basic.services.huly-bridge.forwards.web.configFile}"
      ];
    };
  };
  testDisabledDefinesNothing = {
    expr =
      let
        c = h.eval [
          h.modules.bridge
          { services.huly-bridge.forwards.web = web; }
        ];
      in
      {
        services = c.systemd.services;
        containers = c.containers;
      };
    expected = {
      services = { };
      containers = { };
    };
  };
  testSharedSettingsAndMetricsPerForward = {
    expr =
      let
        c = withBridge {
          settings = {
            drain_timeout = "3s";
            future = true;
          };
          forwards.web = web // {
            metricsListen = "127.0.0.1:9200";
            settings.dial_retries = 0;
          };
        };
      in
      {
        inherit (conf c "web") drain_timeout future metrics_listen;
        inherit ((conf c "web").forwards.web) dial_retries;
      };
    expected = {
      drain_timeout = "3s";
      future = true;
      metrics_listen = "127.0.0.1:9200";
      dial_retries = 0;
    };
  };

  testSocketActivation = {
    expr =
      let
        c = withBridge { forwards.web = web // { socketActivation = true; }; };
        s = c.systemd.sockets.huly-bridge-web;
      in
      {
        inherit (s) listenStreams wantedBy;
        inherit (s.socketConfig) FileDescriptorName Service;
        requires = c.systemd.services.huly-bridge-web.requires;
        listeners = c.services.huly-net.listeners;
      };
    expected = {
      listenStreams = [ "127.0.0.1:8080" ];
      wantedBy = [ "sockets.target" ];
      FileDescriptorName = "web";
      Service = "huly-bridge-web.service";
      requires = [ "huly-bridge-web.socket" ];
      listeners = [ ];
    };
  };
  testUnixSocketActivation = {
    expr =
      let
        c = withBridge {
          forwards.u = {
            listen = "unix:/run/huly-bridge/u/in.sock";
            target = "tcp:127.0.0.1:80";
            socketActivation = true;
          };
        };
      in
      {
        inherit (c.systemd.sockets.huly-bridge-u) listenStreams;
        inherit (c.systemd.sockets.huly-bridge-u.socketConfig) SocketMode;
      };
    expected = {
      listenStreams = [ "/run/huly-bridge/u/in.sock" ];
      SocketMode = "0660";
    };
  };
  testLowPortCapability = {
    expr =
      let
        s = sc (withBridge {
          forwards.http = {
            listen = "tcp:0.0.0.0:80";
            target = "tcp:10.0.0.2:8080";
          };
        }) "http";
      in
      {
        inherit (s) CapabilityBoundingSet AmbientCapabilities PrivateUsers;
      };
    expected = {
      CapabilityBoundingSet = "CAP_NET_BIND_SERVICE";
      AmbientCapabilities = "CAP_NET_BIND_SERVICE";
      PrivateUsers = false;
    };
  };
  testFirewallPerForwardAndDefault = {
    expr = {
      none = basic.networking.firewall.allowedTCPPorts;
      default =
        (withBridge {
          openFirewall = true;
          forwards.web = web;
        }).networking.firewall.allowedTCPPorts;
      perForward =
        (withBridge {
          openFirewall = true;
          forwards = {
            web = web // { openFirewall = false; };
            api = {
              listen = "tcp:0.0.0.0:9000";
              target = "tcp:10.0.0.2:9000";
            };
          };
        }).networking.firewall.allowedTCPPorts;
    };
    expected = {
      none = [ ];
      default = [ 8080 ];
      perForward = [ 9000 ];
    };
  };

  testAssertUniqueListenAddresses = {
    expr = h.failsWith "listen addresses collide" (withBridge {
      forwards = {
        a = web;
        b = web // {
          listen = "tcp:0.0.0.0:8080";
        };
      };
    });
    expected = true;
  };
  testDifferentHostsSamePortAllowed = {
    expr = h.failed (withBridge {
      forwards = {
        a = web;
        b = web // {
          listen = "tcp:127.0.0.2:8080";
        };
      };
    });
    expected = [ ];
  };
  testAssertForwardName = {
    expr = h.failsWith "forwards.a.b: a forward's name may contain only" (withBridge {
      forwards."a.b" = web;
    });
    expected = true;
  };
  testAssertNoForwardsInSettings = {
    expr = h.failsWith "settings.forwards is not used" (withBridge {
      settings.forwards.x = { };
    });
    expected = true;
  };
  testTypeErrorAddressWithoutScheme = {
    expr = h.throws (conf (withBridge { forwards.web = web // { listen = "127.0.0.1:8080"; }; }) "web");
    expected = true;
  };
  testTypeErrorMaxConnections = {
    expr = h.throws (conf (withBridge { forwards.web = web // { settings.max_connections = 0; }; }) "web");
    expected = true;
  };

  testTwoTierNoAssertionFails = {
    expr = h.failed twoTier ++ h.failed inner;
    expected = [ ];
  };
  testTwoTierHostForward = {
    expr = (conf twoTier "svc-http").forwards.svc-http;
    expected = {
      listen = "tcp:127.0.0.1:18000";
      target = "tcp:10.233.1.2:8000";
      max_connections = 1024;
      idle_timeout = "1m";
      dial_timeout = "5s";
      dial_retries = 5;
    };
  };
  testTwoTierHostUnit = {
    expr = lib.attrNames twoTier.systemd.services;
    expected = [ "huly-bridge-svc-http" ];
  };
  testTwoTierContainerRelay = {
    expr = {
      forward = (conf inner "http").forwards.http;
      inherit (conf inner "http") log_level;
      units = lib.attrNames inner.systemd.services;
      firewall = inner.networking.firewall.interfaces.eth0.allowedTCPPorts;
      hostFirewall = twoTier.networking.firewall.allowedTCPPorts;
      package = inner.services.huly-bridge.package == h.pkgs.huly-net;
    };
    expected = {
      forward = {
        listen = "tcp:10.233.1.2:8000";
        target = "tcp:127.0.0.1:8000";
        max_connections = 1024;
        idle_timeout = "1m";
        dial_timeout = "5s";
        dial_retries = 5;
      };
      log_level = "debug";
      units = [ "huly-bridge-http" ];
      firewall = [ 8000 ];
      hostFirewall = [ ];
      package = true;
    };
  };
  testTwoTierRelayPortAndAddress = {
    expr =
      let
        c = h.eval [
          h.modules.bridge
          {
            services.huly-bridge = {
              enable = true;
              containers.svc = {
                address = "192.168.100.11";
                ports.db = {
                  servicePort = 5432;
                  relayPort = 15432;
                  relayAddress = "0.0.0.0";
                  hostPort = 5432;
                  openFirewall = true;
                };
              };
            };
          }
        ];
        i = h.eval [ c.containers.svc.config ];
      in
      {
        host = (conf c "svc-db").forwards.svc-db.target;
        relay = (conf i "db").forwards.db.listen;
        firewall = c.networking.firewall.allowedTCPPorts;
        failed = h.failed c;
      };
    expected = {
      host = "tcp:192.168.100.11:15432";
      relay = "tcp:0.0.0.0:15432";
      firewall = [ 5432 ];
      failed = [ ];
    };
  };
  testAssertTwoTierNeedsAddress = {
    expr = h.failsWith "containers.svc: the container's address is unknown" (withBridge {
      containers.svc.ports.http = {
        servicePort = 8000;
        hostPort = 18000;
      };
    });
    expected = true;
  };
  testAssertRelayNotOnServicePort = {
    expr = h.failsWith "ports.http: the relay would listen where the service does" (h.eval [
      h.modules.bridge
      {
        containers.svc.localAddress = "10.233.1.2";
        services.huly-bridge = {
          enable = true;
          containers.svc.ports.http = {
            servicePort = 8000;
            relayAddress = "0.0.0.0";
            hostPort = 18000;
          };
        };
      }
    ]);
    expected = true;
  };
}
