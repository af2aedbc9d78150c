# services.huly-agent
{ lib, h }:
let
  withAgent = cfg: h.eval [
    h.modules.agent
    { services.huly-agent = { enable = true; } // cfg; }
  ];
  defaults = withAgent { };
  sc = c: c.systemd.services.huly-agent.serviceConfig;
  conf = c: h.json c.services.huly-agent.configFile;

  kindsDecl = {
      echo = {
        runtime = "builtin";
        builtin = "echo";
        pinned = [
          {
            uuid = "echo-ha";
            stateless = true;
          }
        ];
      };
      worker = {
        runtime = "transient";
        command = "/run/current-system/sw/bin/worker";
        args = [ "--fast" ];
        environment.MODE = "prod";
        restart = "on-failure";
        max_instances = 4;
        unit_properties.MemoryMax = "512M";
      };
      web = {
        runtime = "nspawn";
        command = "/bin/web";
        nspawn = {
          directory = "/var/lib/machines/web";
          bind = [ "/srv:/srv" ];
          port = 8080;
        };
      };
  };
  kinds = withAgent {
    settings = {
      advertise_host = "agent1";
      labels = [ "zone-a" ];
      kinds = kindsDecl;
    };
  };
  # The same kinds through the renamed camelCase option.
  oldKinds = withAgent {
    settings = {
      advertise_host = "agent1";
      labels = [ "zone-a" ];
    };
    kinds = lib.mapAttrs (
      _: k:
      removeAttrs k [
        "max_instances"
        "unit_properties"
      ]
      // lib.optionalAttrs (k ? max_instances) { maxInstances = k.max_instances; }
      // lib.optionalAttrs (k ? unit_properties) { unitProperties = k.unit_properties; }
    ) kindsDecl;
  };
  onlyProcess = withAgent {
    settings.kinds.p = {
      runtime = "process";
      command = "/bin/p";
    };
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
      network = "127.0.0.1:3737";
      agent_id = "";
      listen = "0.0.0.0:3738";
      advertise_host = "";
      labels = [ ];
      metrics_listen = "";
      log_level = "info";
      log_format = "auto";
      kinds = { };
    };
  };
  testDefaultsUnit = {
    expr = {
      inherit (sc defaults)
        Type
        NotifyAccess
        User
        Group
        StateDirectory
        KillMode
        CapabilityBoundingSet
        ;
      privateUsers = (sc defaults) ? PrivateUsers;
      exec = lib.take 2 (h.words (sc defaults).ExecStart);
      after = defaults.systemd.services.huly-agent.after;
    };
    expected = {
      Type = "notify";
      NotifyAccess = "main";
      User = "huly-agent";
      Group = "huly-agent";
      StateDirectory = "huly-agent";
      KillMode = "mixed";
      CapabilityBoundingSet = "";
      privateUsers = false;
      exec = [
        "${h.pkgs.huly-net}/bin/huly-agent"
        "--config"
      ];
      after = [
        "network-online.target"
        "dbus.service"
      ];
    };
  };
  testDefaultsSystemUser = {
    expr = {
      user = defaults.users.users.huly-agent;
      group = defaults.users.groups ? huly-agent;
    };
    expected = {
      user = {
        isSystemUser = true;
        group = "huly-agent";
        description = "Huly Virtual Network agent";
      };
      group = true;
    };
  };
  testBuiltinOnlyNeedsNoPolkit = {
    expr = defaults.security.polkit.enable || onlyProcess.security.polkit.enable;
    expected = false;
  };
  testDisabledDefinesNothing = {
    expr =
      let
        c = h.eval [ h.modules.agent ];
      in
      {
        services = c.systemd.services;
        users = c.users.users;
        polkit = c.security.polkit.enable;
      };
    expected = {
      services = { };
      users = { };
      polkit = false;
    };
  };

  testKindsRenderedSnakeCase = {
    expr = (conf kinds).kinds;
    expected = {
      echo = {
        runtime = "builtin";
        builtin = "echo";
        args = [ ];
        environment = { };
        labels = [ ];
        restart = "never";
        max_instances = 0;
        restart_backoff = "1s";
        unused_timeout = "5s";
        pinned = [
          {
            uuid = "echo-ha";
            labels = [ ];
            stateless = true;
          }
        ];
      };
      worker = {
        runtime = "transient";
        command = "/run/current-system/sw/bin/worker";
        args = [ "--fast" ];
        environment.MODE = "prod";
        labels = [ ];
        restart = "on-failure";
        max_instances = 4;
        restart_backoff = "1s";
        unused_timeout = "5s";
        pinned = [ ];
        unit_properties.MemoryMax = "512M";
      };
      web = {
        runtime = "nspawn";
        command = "/bin/web";
        args = [ ];
        environment = { };
        labels = [ ];
        restart = "never";
        max_instances = 0;
        restart_backoff = "1s";
        unused_timeout = "5s";
        pinned = [ ];
        nspawn = {
          directory = "/var/lib/machines/web";
          bind = [ "/srv:/srv" ];
          port = 8080;
          private_network = true;
        };
      };
    };
  };
  testSettingsRendered = {
    expr = {
      inherit (conf kinds) advertise_host labels network;
    };
    expected = {
      advertise_host = "agent1";
      labels = [ "zone-a" ];
      network = "127.0.0.1:3737";
    };
  };
  testExtraSettingsMergedIntoKind = {
    expr =
      (conf (withAgent {
        settings.kinds.e = {
          runtime = "builtin";
          builtin = "echo";
          future = 1;
        };
      })).kinds.e.future;
    expected = 1;
  };
  testSystemdRuntimesEnablePolkitRule = {
    expr = {
      inherit (kinds.security.polkit) enable;
      unitPrefix = lib.hasInfix "/^huly-c-" kinds.security.polkit.extraConfig;
      user = lib.hasInfix "subject.user !== \"huly-agent\"" kinds.security.polkit.extraConfig;
    };
    expected = {
      enable = true;
      unitPrefix = true;
      user = true;
    };
  };
  testNoAssertionFailsForValidKinds = {
    expr = h.failed kinds;
    expected = [ ];
  };

  testFirewall = {
    expr = (withAgent { openFirewall = true; }).networking.firewall.allowedTCPPorts;
    expected = [ 3738 ];
  };
  testLowPortCapabilityWithoutPrivateUsers = {
    expr =
      let
        s = sc (withAgent { settings.listen = "0.0.0.0:738"; });
      in
      {
        inherit (s) CapabilityBoundingSet AmbientCapabilities;
        privateUsers = s ? PrivateUsers;
      };
    expected = {
      CapabilityBoundingSet = "CAP_NET_BIND_SERVICE";
      AmbientCapabilities = "CAP_NET_BIND_SERVICE";
      privateUsers = false;
    };
  };

  testAssertBuiltinNeedsName = {
    expr = h.failsWith "kinds.e: runtime \"builtin\" needs `builtin`" (withAgent {
      settings.kinds.e.runtime = "builtin";
    });
    expected = true;
  };
  testAssertProcessNeedsCommand = {
    expr = h.failsWith "kinds.p: runtime \"process\" needs `command`" (withAgent {
      settings.kinds.p.runtime = "process";
    });
    expected = true;
  };
  testAssertTransientNeedsCommand = {
    expr = h.failsWith "kinds.t: runtime \"transient\" needs `command`" (withAgent {
      settings.kinds.t.runtime = "transient";
    });
    expected = true;
  };
  testAssertNspawnNeedsExactlyOneRoot = {
    expr = [
      (h.failsWith "exactly one of `nspawn.directory` and `nspawn.image`" (withAgent {
        settings.kinds.n = {
          runtime = "nspawn";
          nspawn.port = 80;
        };
      }))
      (h.failsWith "exactly one of" (withAgent {
        settings.kinds.n = {
          runtime = "nspawn";
          nspawn = {
            directory = "/var/lib/machines/n";
            image = "/var/lib/machines/n.raw";
            port = 80;
          };
        };
      }))
    ];
    expected = [
      true
      true
    ];
  };
  testAssertNspawnNeedsPort = {
    expr = h.failsWith "needs `nspawn.port`" (withAgent {
      settings.kinds.n = {
        runtime = "nspawn";
        nspawn.directory = "/var/lib/machines/n";
      };
    });
    expected = true;
  };
  testAssertPinnedUuidsUnique = {
    expr = h.failsWith "pinned uuids must be unique, these repeat: same" (withAgent {
      settings.kinds = {
        a = {
          runtime = "builtin";
          builtin = "echo";
          pinned = [ { uuid = "same"; } ];
        };
        b = {
          runtime = "builtin";
          builtin = "echo";
          pinned = [ { uuid = "same"; } ];
        };
      };
    });
    expected = true;
  };
  testAssertKindNotDeclaredTwice = {
    expr = h.failsWith "kinds declared both in settings.kinds and in the renamed kinds option (e)" (withAgent {
      settings.kinds.e.runtime = "builtin";
      kinds.e = {
        runtime = "builtin";
        builtin = "echo";
      };
    });
    expected = true;
  };
  testWarnUnitPropertiesWithoutSystemdRuntime = {
    expr =
      (withAgent {
        settings.kinds.e = {
          runtime = "builtin";
          builtin = "echo";
          unit_properties.MemoryMax = "1G";
        };
      }).warnings;
    expected = [ "services.huly-agent.settings.kinds.e.unit_properties has no effect with runtime \"builtin\"." ];
  };
  testRenamedKindsOptionStillWorksWithAWarning = {
    expr = {
      same = (conf oldKinds).kinds == (conf kinds).kinds;
      warned = map (lib.hasPrefix "services.huly-agent.kinds is renamed to services.huly-agent.settings.kinds") oldKinds.warnings;
      failed = h.failed oldKinds;
    };
    expected = {
      same = true;
      warned = [ true ];
      failed = [ ];
    };
  };

  testTypeErrorUnknownRuntime = {
    expr = h.throws (conf (withAgent { settings.kinds.d.runtime = "docker"; })).kinds;
    expected = true;
  };
  testTypeErrorRestartPolicy = {
    expr = h.throws (conf (withAgent {
      settings.kinds.e = {
        runtime = "builtin";
        builtin = "echo";
        restart = "always";
      };
    })).kinds;
    expected = true;
  };
  testTypeErrorNetworkAddress = {
    expr = h.throws (conf (withAgent { settings.network = "localhost"; })).network;
    expected = true;
  };

  # With every module imported, the agent orders itself after a local
  # server and the listener check spans services.
  testWithLocalNetwork = {
    expr =
      let
        c = h.eval [
          h.modules.all
          {
            services.huly-network.enable = true;
            services.huly-agent.enable = true;
          }
        ];
      in
      {
        after = lib.elem "huly-network.service" c.systemd.services.huly-agent.after;
        failed = h.failed c;
      };
    expected = {
      after = true;
      failed = [ ];
    };
  };
  testAgentOnServerPortCollides = {
    expr =
      let
        c = h.eval [
          h.modules.all
          {
            services.huly-network.enable = true;
            services.huly-agent = {
              enable = true;
              settings.listen = "0.0.0.0:3737";
            };
          }
        ];
      in
      map (w: h.failsWith w c) [
        "listen addresses collide"
        "services.huly-network.settings.listen (*:3737)"
        "services.huly-agent.settings.listen (*:3737)"
      ];
    expected = [
      true
      true
      true
    ];
  };
}
