# Helpers shared by the huly-net NixOS modules. Not a module: the modules
# import it with `import ./lib.nix { inherit lib; }`.
{ lib }:
let
  inherit (lib) types;

  goUnit = "(ns|us|µs|ms|s|m|h)";
  goNumber = "([0-9]+(\\.[0-9]*)?|\\.[0-9]+)";

  # Nanoseconds per Go duration unit.
  unitNs = {
    ns = 1;
    us = 1000;
    "µs" = 1000;
    ms = 1000000;
    s = 1000000000;
    m = 60000000000;
    h = 3600000000000;
  };

  # "1." and ".5" are valid Go numbers but not JSON ones.
  parseNumber =
    s:
    let
      lead = if lib.hasPrefix "." s then "0" + s else s;
      full = if lib.hasSuffix "." lead then lead + "0" else lead;
    in
    builtins.fromJSON full;

  unbracket = h: lib.removeSuffix "]" (lib.removePrefix "[" h);
in
rec {
  # A Go duration string as the daemons parse it (time.ParseDuration),
  # without a sign: "0", "300ms", "1m30s".
  duration = types.strMatching "0|(${goNumber}${goUnit})+" // {
    description = "Go duration string (e.g. \"300ms\", \"3s\", \"1m30s\")";
  };

  # Nanoseconds in a duration string, for cross-field comparisons. The
  # number before the unit must not be followed by another digit, so the
  # rest of the string starts with a digit or a dot, which makes "1ms" parse
  # as 1 ms and never as 1 m plus a dangling "s".
  durationToNs =
    d:
    if d == "0" then
      0
    else
      let
        m = builtins.match "([0-9.]+)(ns|us|µs|ms|s|m|h)([0-9.].*)?" d;
        rest = builtins.elemAt m 2;
      in
      if m == null then
        throw "huly-net: '${d}' is not a Go duration"
      else
        parseNumber (builtins.elemAt m 0) * unitNs.${builtins.elemAt m 1}
        + (if rest == null then 0 else durationToNs rest);

  logLevel = types.enum [
    "trace"
    "debug"
    "info"
    "warn"
    "error"
  ];

  logFormat = types.enum [
    "auto"
    "text"
    "json"
    "journal"
  ];

  # HOST:PORT with HOST a name, an IPv4 address, [IPv6] or empty (all
  # addresses), as Go's net.Listen and net.Dial take it.
  # (Brackets are matched as [[] and []]: the regex engine rejects \[.)
  hostPortRegex = "([[][0-9A-Fa-f:.%a-z]+[]]|[A-Za-z0-9_.*-]*):[0-9]+";
  hostPort = types.strMatching hostPortRegex // {
    description = "HOST:PORT address";
  };

  # The metrics endpoint: HOST:PORT, or "" for none.
  optionalHostPort = types.strMatching "|${hostPortRegex}" // {
    description = "HOST:PORT address, or \"\" for none";
  };

  # huly-network's ZeroMQ endpoint: tcp://HOST:PORT, HOST may be *.
  zmqEndpoint = types.strMatching "tcp://${hostPortRegex}" // {
    description = "ZeroMQ TCP endpoint tcp://HOST:PORT (HOST may be *)";
  };

  # huly-bridge addresses: tcp:HOST:PORT or unix:/absolute/path.
  bridgeAddress = types.strMatching "tcp:${hostPortRegex}|unix:/.+" // {
    description = "bridge address tcp:HOST:PORT or unix:/PATH";
  };

  # Split "HOST:PORT" (any of the forms above, scheme already removed) into
  # { host; port; }; host is "" for all addresses.
  splitHostPort =
    addr:
    let
      m = builtins.match "(.*):([0-9]+)" addr;
      host = unbracket (builtins.elemAt m 0);
    in
    if m == null then
      null
    else
      {
        host = if host == "*" || host == "0.0.0.0" || host == "::" then "" else host;
        port = lib.toInt (builtins.elemAt m 1);
      };

  # The { host; port; } a TCP address listens on, or null (unix sockets, "").
  tcpListenOf =
    addr:
    if addr == "" || lib.hasPrefix "unix:" addr then
      null
    else
      splitHostPort (lib.removePrefix "tcp:" (lib.removePrefix "tcp://" addr));

  # ListenStream= for a TCP address: "PORT" for all addresses, else
  # "HOST:PORT" ([v6]:PORT for IPv6); unix:PATH becomes PATH.
  listenStreamOf =
    addr:
    if lib.hasPrefix "unix:" addr then
      lib.removePrefix "unix:" addr
    else
      let
        hp = tcpListenOf addr;
      in
      if hp.host == "" then
        toString hp.port
      else if lib.hasInfix ":" hp.host then
        "[${hp.host}]:${toString hp.port}"
      else
        "${hp.host}:${toString hp.port}";

  # Strip a "/prefix" from an address such as NixOS containers' localAddress.
  stripPrefixLength = a: builtins.head (lib.splitString "/" a);

  # Two listeners collide when they share a port and one of them listens on
  # all addresses or both on the same one.
  collides = a: b: a.port == b.port && (a.host == "" || b.host == "" || a.host == b.host);

  # Capabilities for a service whose own listeners (not socket-activated
  # ones) are given: CAP_NET_BIND_SERVICE only when a port is below 1024.
  # PrivateUsers= would take the capability away again, so it goes with it.
  bindCapabilities =
    listeners:
    if lib.any (l: l != null && l.port < 1024) listeners then
      {
        CapabilityBoundingSet = "CAP_NET_BIND_SERVICE";
        AmbientCapabilities = "CAP_NET_BIND_SERVICE";
        PrivateUsers = false;
      }
    else
      {
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        PrivateUsers = true;
      };

  # The sandbox every huly-net unit shares; values are written exactly as in
  # packaging/systemd so that the module tests can compare the two.
  baseHardening = {
    NoNewPrivileges = true;
    UMask = "0077";
    PrivateTmp = true;
    PrivateDevices = true;
    PrivateMounts = true;
    DevicePolicy = "closed";
    ProtectSystem = "strict";
    ProtectHome = true;
    ProtectHostname = true;
    ProtectClock = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectProc = "invisible";
    RestrictAddressFamilies = "AF_INET AF_INET6 AF_UNIX";
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    RemoveIPC = true;
    SystemCallArchitectures = "native";
    SystemCallErrorNumber = "EPERM";
  };

  # huly-network and huly-bridge: nothing but sockets, so everything else
  # is taken away (systemd-analyze security exposure 1.1 with systemd 252).
  strictHardening = baseHardening // {
    DynamicUser = true;
    ProcSubset = "pid";
    RestrictNamespaces = true;
    MemoryDenyWriteExecute = true;
    SystemCallFilter = [
      "@system-service"
      "~@privileged @resources"
    ];
  };

  # The unit settings every huly-net daemon shares.
  notifyService = watchdogSec: {
    Type = "notify";
    NotifyAccess = "main";
    Restart = "on-failure";
    RestartSec = "1s";
    TimeoutStopSec = "30s";
    LimitNOFILE = 65536;
  }
  // lib.optionalAttrs (watchdogSec != null) { WatchdogSec = watchdogSec; };

  # The watchdogSec option of every module.
  watchdogOption = lib.mkOption {
    type = types.nullOr duration;
    default = "30s";
    example = "10s";
    description = ''
      `WatchdogSec=` of the unit: the daemon sends WATCHDOG=1 at half this
      interval and systemd restarts it when a ping is missed. `null` turns
      the watchdog off.
    '';
  };

  # The extraArgs option of every module.
  # log_level and log_format, the same in every daemon's settings.
  loggingOptions = {
    log_level = lib.mkOption {
      type = logLevel;
      default = "info";
      description = "Log level.";
    };
    log_format = lib.mkOption {
      type = logFormat;
      default = "auto";
      description = "Log format; `auto` is `journal` (no timestamps, a syslog priority prefix per line) when stderr is the journal, `text` otherwise.";
    };
  };

  extraArgsOption = lib.mkOption {
    type = types.listOf types.str;
    default = [ ];
    example = [
      "--log-level"
      "debug"
    ];
    description = ''
      Extra command-line arguments; flags override the configuration file.
    '';
  };

  # One word of ExecStart=. systemd's command line is not a shell: it knows
  # double quotes with backslash escapes, and expands % specifiers and $
  # variables, so those are doubled.
  escapeExecArg =
    arg:
    let
      s = lib.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (toString arg);
    in
    if builtins.match "[[:alnum:],._+:@/=-]+" s != null then
      s
    else
      "\"" + lib.replaceStrings [ "\\" "\"" ] [ "\\\\" "\\\"" ] s + "\"";

  # ExecStart= with the binary exec'd directly (no shell), so that
  # NotifyAccess=main reaches it.
  execStart =
    package: binary: configFile: extraArgs:
    lib.concatMapStringsSep " " escapeExecArg (
      [
        "${package}/bin/${binary}"
        "--config"
        "${configFile}"
      ]
      ++ extraArgs
    );
}
