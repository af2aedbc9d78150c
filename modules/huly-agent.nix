# services.huly-agent: hosts Huly containers (builtin Go kinds, child
# processes, transient systemd units, systemd-nspawn machines) and registers
# them with a huly-network server.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.huly-agent;
  hl = import ./lib.nix { inherit lib; };
  inherit (lib) mkOption types;
  format = pkgs.formats.json { };

  # The polkit rule names this user; packaging/systemd uses the same name.
  user = "huly-agent";

  pinnedModule = {
    options = {
      uuid = mkOption {
        type = types.strMatching "[^[:space:]]+";
        description = "The container's fixed uuid.";
      };
      labels = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Labels the container is registered with.";
      };
      stateless = mkOption {
        type = types.bool;
        default = false;
        description = ''
          A stateless (HA) container: every agent that declares this uuid
          offers it, the network keeps the first and the others take over
          when it goes away.
        '';
      };
    };
  };

  # The deprecated camelCase spelling of a kind's keys: the same options
  # as settings.kinds (below) under their old names, plus extraSettings.
  camelKeys = {
    max_instances = "maxInstances";
    restart_backoff = "restartBackoff";
    unused_timeout = "unusedTimeout";
    unit_properties = "unitProperties";
    private_network = "privateNetwork";
  };
  snakeKeys = lib.mapAttrs' (snake: camel: lib.nameValuePair camel snake) camelKeys;
  renameKeys = names: lib.mapAttrs' (n: v: lib.nameValuePair (names.${n} or n) v);

  kindModule = {
    options =
      renameKeys camelKeys (removeAttrs kindSettingsModule.options [ "nspawn" ])
      // {
        nspawn = renameKeys camelKeys kindSettingsModule.options.nspawn;
        extraSettings = mkOption {
          type = format.type;
          default = { };
          description = "Further keys of this kind's JSON object, written as given.";
        };
      };
  };

  # A kind under settings.kinds: the agent's own keys (snake_case), typed
  # and documented; any other key is written as given.
  kindSettingsModule = {
    freeformType = format.type;
    options = {
      runtime = mkOption {
        type = types.enum [
          "builtin"
          "process"
          "transient"
          "nspawn"
        ];
        description = ''
          How containers of this kind run: `builtin` (Go code in the agent),
          `process` (a child process), `transient` (a transient systemd unit
          `huly-c-*`, needs D-Bus and polkit), `nspawn` (a systemd-nspawn
          machine `huly-*`, needs machined).
        '';
      };
      builtin = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "echo";
        description = "The built-in kind to serve (runtime `builtin`).";
      };
      command = mkOption {
        type = types.nullOr (types.either types.str types.path);
        default = null;
        description = "The program of each container (runtimes `process`, `transient`, and inside `nspawn` machines).";
      };
      args = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Arguments of `command`.";
      };
      environment = mkOption {
        type = types.attrsOf types.str;
        default = { };
        description = "Environment of `command`.";
      };
      labels = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Labels of every container of this kind.";
      };
      max_instances = mkOption {
        type = types.ints.unsigned;
        default = 0;
        description = "Most containers of this kind at once; 0 for no limit.";
      };
      restart = mkOption {
        type = types.enum [
          "never"
          "on-failure"
        ];
        default = "never";
        description = "Whether a crashed container is started again.";
      };
      restart_backoff = mkOption {
        type = hl.duration;
        default = "1s";
        description = "First wait before a restart; it grows with repeated crashes.";
      };
      unused_timeout = mkOption {
        type = hl.duration;
        default = "5s";
        description = "A container nobody references is stopped after this long.";
      };
      pinned = mkOption {
        type = types.listOf (types.submodule pinnedModule);
        default = [ ];
        description = "Containers with fixed uuids that the agent keeps running and registered.";
      };
      unit_properties = mkOption {
        type = types.attrsOf (
          types.oneOf [
            types.str
            types.int
            types.bool
          ]
        );
        default = { };
        example = {
          MemoryMax = "512M";
          CPUQuota = "50%";
        };
        description = "Properties of each transient unit (runtimes `transient` and `nspawn`).";
      };
      nspawn = {
        directory = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "/var/lib/machines/web";
          description = "Root directory of each machine (runtime `nspawn`; this or `image`).";
        };
        image = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "Disk image of each machine (runtime `nspawn`; this or `directory`).";
        };
        private_network = mkOption {
          type = types.bool;
          default = true;
          description = "Give each machine its own network namespace; its port is then bridged to the host.";
        };
        bind = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "/srv/data:/data" ];
          description = "Bind mounts `SOURCE:DEST` into each machine.";
        };
        port = mkOption {
          type = types.nullOr types.port;
          default = null;
          description = "The TCP port the container serves on inside its machine (runtime `nspawn`).";
        };
      };
    };
  };

  # A kind of the deprecated option as the agent reads it: its keys under
  # their snake_case names, then extraSettings as given.
  renderKind =
    k:
    renderSettingsKind (
      renameKeys snakeKeys (removeAttrs k [ "extraSettings" ])
      // {
        nspawn = renameKeys snakeKeys k.nspawn;
      }
    )
    // k.extraSettings;

  # A kind of settings.kinds as the agent reads it: unset options left out,
  # the nspawn block only for runtime nspawn.
  renderSettingsKind =
    k:
    lib.filterAttrs (_: v: v != null) (
      k
      // {
        command = if k.command == null then null else toString k.command;
        unit_properties = if k.unit_properties == { } then null else k.unit_properties;
        nspawn = if k.runtime != "nspawn" then null else lib.filterAttrs (_: v: v != null) k.nspawn;
      }
    );

  # The kinds as written to the file: settings.kinds, and those of the
  # deprecated camelCase option.
  allKinds = lib.mapAttrs (_: renderSettingsKind) cfg.settings.kinds // lib.mapAttrs (_: renderKind) cfg.kinds;

  finalSettings = cfg.settings // {
    kinds = allKinds;
  };

  kindsWith = runtimes: lib.filterAttrs (_: k: lib.elem k.runtime runtimes) allKinds;
  usesSystemd = kindsWith [
    "transient"
    "nspawn"
  ] != { };

  allPinned = lib.concatLists (
    lib.mapAttrsToList (kind: k: map (p: "${kind}/${p.uuid}") k.pinned) allKinds
  );
  pinnedUuids = lib.concatMap (k: map (p: p.uuid) k.pinned) (lib.attrValues allKinds);
  duplicateUuids = lib.unique (
    lib.filter (u: lib.count (x: x == u) pinnedUuids > 1) pinnedUuids
  );

  kindsInBoth = lib.intersectLists (lib.attrNames cfg.settings.kinds) (lib.attrNames cfg.kinds);

  kindAssertions = lib.concatLists (
    lib.mapAttrsToList (name: k: [
      {
        assertion = k.runtime != "builtin" || k ? builtin;
        message = "services.huly-agent.settings.kinds.${name}: runtime \"builtin\" needs `builtin` (e.g. \"echo\").";
      }
      {
        assertion = !(lib.elem k.runtime [ "process" "transient" ]) || k ? command;
        message = "services.huly-agent.settings.kinds.${name}: runtime \"${k.runtime}\" needs `command`.";
      }
      {
        assertion = k.runtime != "nspawn" || ((k.nspawn ? directory) != (k.nspawn ? image));
        message = "services.huly-agent.settings.kinds.${name}: runtime \"nspawn\" needs exactly one of `nspawn.directory` and `nspawn.image`.";
      }
      {
        assertion = k.runtime != "nspawn" || k.nspawn ? port;
        message = "services.huly-agent.settings.kinds.${name}: runtime \"nspawn\" needs `nspawn.port`, the port the bridge brings to the host.";
      }
    ]) allKinds
  );

  kindWarnings =
    lib.concatLists (
      lib.mapAttrsToList (
        name: k:
        lib.optional (k ? unit_properties && !(lib.elem k.runtime [ "transient" "nspawn" ]))
          "services.huly-agent.settings.kinds.${name}.unit_properties has no effect with runtime \"${k.runtime}\"."
      ) allKinds
    )
    ++ lib.optional (cfg.kinds != { }) ''
      services.huly-agent.kinds is renamed to services.huly-agent.settings.kinds, whose keys are snake_case like every other key of settings (maxInstances → max_instances, restartBackoff → restart_backoff, unusedTimeout → unused_timeout, unitProperties → unit_properties, nspawn.privateNetwork → nspawn.private_network; extraSettings → the keys themselves). Kinds of the old option: ${lib.concatStringsSep ", " (lib.attrNames cfg.kinds)}.'';

  listen = hl.tcpListenOf cfg.settings.listen;
  metrics = hl.tcpListenOf cfg.settings.metrics_listen;
in
{
  imports = [
    ./ports.nix
    ./huly-agent-security.nix
  ];

  options.services.huly-agent = {
    enable = lib.mkEnableOption "huly-agent, the Huly Virtual Network agent";

    package = lib.mkPackageOption pkgs "huly-net" { };

    settings = mkOption {
      default = { };
      description = ''
        The agent's JSON configuration (passed with `--config`). The keys
        below are typed and documented; any other key is written as given.
      '';
      type = types.submodule {
        freeformType = format.type;
        options = {
          network = mkOption {
            type = hl.hostPort;
            default = "127.0.0.1:3737";
            description = "HOST:PORT of the huly-network server.";
          };
          agent_id = mkOption {
            type = types.str;
            default = "";
            description = "The agent's id; empty to generate one once and keep it in the state directory.";
          };
          listen = mkOption {
            type = hl.hostPort;
            default = "0.0.0.0:3738";
            description = "Address of the agent's own endpoint (routed and direct container connections).";
          };
          advertise_host = mkOption {
            type = types.str;
            default = "";
            example = "agent1.example.org";
            description = "Host name clients use to reach the agent's endpoint; empty to derive it.";
          };
          labels = mkOption {
            type = types.listOf types.str;
            default = [ ];
            description = "Labels of the agent.";
          };
          metrics_listen = mkOption {
            type = hl.optionalHostPort;
            default = "";
            description = "Address of the Prometheus metrics endpoint; empty for none. Never opened in the firewall.";
          };
          kinds = mkOption {
            type = types.attrsOf (types.submodule kindSettingsModule);
            default = { };
            example = {
              echo = {
                runtime = "builtin";
                builtin = "echo";
              };
              worker = {
                runtime = "transient";
                command = "/run/current-system/sw/bin/my-worker";
                restart = "on-failure";
                unit_properties.MemoryMax = "512M";
              };
            };
            description = "The kinds of container this agent offers, by name.";
          };
        }
        // hl.loggingOptions;
      };
    };

    kinds = mkOption {
      type = types.attrsOf (types.submodule kindModule);
      default = { };
      visible = false;
      description = "Renamed to `services.huly-agent.settings.kinds` (keys in snake_case); still read, with a warning.";
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      description = "The JSON file generated from `settings`.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the agent's listen port in the firewall (the metrics port stays closed).";
    };

    extraArgs = hl.extraArgsOption;

    watchdogSec = hl.watchdogOption;
  };

  config = lib.mkMerge [
    { services.huly-agent.configFile = format.generate "huly-agent.json" finalSettings; }

    (lib.mkIf cfg.enable {
      assertions = kindAssertions ++ [
        {
          assertion = duplicateUuids == [ ];
          message = "services.huly-agent.settings.kinds: pinned uuids must be unique, these repeat: ${lib.concatStringsSep ", " duplicateUuids} (in ${lib.concatStringsSep ", " allPinned}).";
        }
        {
          assertion = kindsInBoth == [ ];
          message = "services.huly-agent: kinds declared both in settings.kinds and in the renamed kinds option (${lib.concatStringsSep ", " kindsInBoth}); use settings.kinds only.";
        }
      ];
      warnings = kindWarnings;

      services.huly-net.listeners = [
        {
          owner = "services.huly-agent.settings.listen";
          inherit (listen) host port;
        }
      ]
      ++ lib.optional (metrics != null) {
        owner = "services.huly-agent.settings.metrics_listen";
        inherit (metrics) host port;
      };

      networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall listen.port;

      users.users.${user} = {
        isSystemUser = true;
        group = user;
        description = "Huly Virtual Network agent";
      };
      users.groups.${user} = { };

      # Starting, stopping and killing huly-c-* units and terminating huly-*
      # machines is all the transient and nspawn runtimes ask of systemd and
      # machined; the same rule file ships for plain systemd hosts.
      security.polkit = lib.mkIf usesSystemd {
        enable = true;
        extraConfig = builtins.readFile ../packaging/systemd/50-huly-agent.rules;
      };

      systemd.services.huly-agent = {
        description = "Huly Virtual Network agent";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [
          "network-online.target"
          "dbus.service"
        ]
        ++ lib.optional (config.services ? huly-network && config.services.huly-network.enable) "huly-network.service";
        serviceConfig =
          hl.notifyService cfg.watchdogSec
          // hl.baseHardening
          # The agent talks to systemd and machined as its real uid, which a
          # user namespace would hide, so PrivateUsers= stays off; see
          # packaging/systemd/huly-agent.service for the rest of the why.
          // removeAttrs (hl.bindCapabilities [
            listen
            metrics
          ]) [ "PrivateUsers" ]
          // {
            ExecStart = hl.execStart cfg.package "huly-agent" cfg.configFile cfg.extraArgs;
            User = user;
            Group = user;
            StateDirectory = "huly-agent";
            StateDirectoryMode = "0700";
            KillMode = "mixed";
            SystemCallFilter = [
              "@system-service"
              "~@privileged"
            ];
          };
      };
    })
  ];
}
