# Parity between the NixOS modules and the plain units in packaging/systemd:
# the same Type, an ExecStart of the same shape (the binary itself, then
# --config FILE) and the same sandbox, key for key and value for value.
{ lib, h }:
let
  c = h.eval [
    h.modules.all
    {
      services.huly-network = {
        enable = true;
        socketActivation = true;
      };
      services.huly-agent.enable = true;
      services.huly-bridge = {
        enable = true;
        forwards.check = {
          listen = "tcp:127.0.0.1:8080";
          target = "tcp:127.0.0.1:9000";
          socketActivation = true;
        };
      };
    }
  ];

  # Settings that legitimately differ:
  # - ExecStart (checked for its shape below);
  # - the agent's user: a static system user on NixOS (users.users, so the
  #   polkit rule can name it before the unit first runs), a dynamic user
  #   with the same name in the plain unit (no user to create by hand).
  differs = {
    network = [ "ExecStart" ];
    bridge = [ "ExecStart" ];
    agent = [
      "ExecStart"
      "DynamicUser"
      "Group"
    ];
  };

  compare =
    kind: file: nixos: instance:
    let
      plain = lib.mapAttrs (_: map (lib.replaceStrings [ "%i" ] [ instance ])) (
        h.unitFile file
      ).Service;
      ours = lib.mapAttrs (_: h.unitValues) nixos;
      keys = lib.subtractLists differs.${kind} (
        lib.unique (lib.attrNames plain ++ lib.attrNames ours)
      );
      mismatch = lib.filter (k: (plain.${k} or null) != (ours.${k} or null)) keys;
    in
    map (k: {
      key = k;
      plain = plain.${k} or null;
      nixos = ours.${k} or null;
    }) mismatch;

  execShape =
    file: nixos:
    let
      plain = h.words (builtins.head (h.unitFile file).Service.ExecStart);
      ours = h.words nixos.ExecStart;
      shape = ws: [
        (baseNameOf (builtins.head ws))
        (builtins.elemAt ws 1)
        (builtins.length ws)
      ];
    in
    {
      plain = shape plain;
      nixos = shape ours;
    };

  svc = name: c.systemd.services.${name}.serviceConfig;
in
{
  testNetworkServiceMatchesPlainUnit = {
    expr = compare "network" "huly-network.service" (svc "huly-network") "";
    expected = [ ];
  };
  testAgentServiceMatchesPlainUnit = {
    expr = compare "agent" "huly-agent.service" (svc "huly-agent") "";
    expected = [ ];
  };
  testBridgeServiceMatchesPlainUnit = {
    expr = compare "bridge" "huly-bridge@.service" (svc "huly-bridge-check") "check";
    expected = [ ];
  };
  testExecStartShape = {
    expr = map (x: x.plain == x.nixos) [
      (execShape "huly-network.service" (svc "huly-network"))
      (execShape "huly-agent.service" (svc "huly-agent"))
      (execShape "huly-bridge@.service" (svc "huly-bridge-check"))
    ];
    expected = [
      true
      true
      true
    ];
  };
  testExecStartBinaries = {
    expr = map (x: builtins.head x.nixos) [
      (execShape "huly-network.service" (svc "huly-network"))
      (execShape "huly-agent.service" (svc "huly-agent"))
      (execShape "huly-bridge@.service" (svc "huly-bridge-check"))
    ];
    expected = [
      "huly-network"
      "huly-agent"
      "huly-bridge"
    ];
  };
  testAgentDynamicUserHasSameName = {
    expr = (h.unitFile "huly-agent.service").Service.User;
    expected = [ (svc "huly-agent").User ];
  };
  testNetworkSocketMatches = {
    expr = {
      backlog = (h.unitFile "huly-network.socket").Socket.Backlog;
      nixos = h.unitValues c.systemd.sockets.huly-network.socketConfig.Backlog;
      stream = (h.unitFile "huly-network.socket").Socket.ListenStream;
      nixosStream = c.systemd.sockets.huly-network.listenStreams;
    };
    expected = {
      backlog = [ "4096" ];
      nixos = [ "4096" ];
      stream = [ "3737" ];
      nixosStream = [ "3737" ];
    };
  };
  testBridgeSocketMatches = {
    expr =
      let
        plain = lib.mapAttrs (_: map (lib.replaceStrings [ "%i" ] [ "check" ])) (
          h.unitFile "huly-bridge@.socket"
        ).Socket;
        ours = c.systemd.sockets.huly-bridge-check.socketConfig;
      in
      {
        fd = plain.FileDescriptorName == h.unitValues ours.FileDescriptorName;
        backlog = plain.Backlog == h.unitValues ours.Backlog;
        service = map (lib.replaceStrings [ "@check" ] [ "-check" ]) plain.Service == h.unitValues ours.Service;
      };
    expected = {
      fd = true;
      backlog = true;
      service = true;
    };
  };
  testPolkitRuleIsThePackagedOne = {
    expr =
      (h.eval [
        h.modules.agent
        {
          services.huly-agent = {
            enable = true;
            kinds.t = {
              runtime = "transient";
              command = "/bin/t";
            };
          };
        }
      ]).security.polkit.extraConfig;
    expected = builtins.readFile ../../packaging/systemd/50-huly-agent.rules;
  };
  # The comparison itself finds differences (so the tests above can fail).
  testCompareSeesDifferences = {
    expr = lib.sort lib.lessThan (
      map (m: m.key) (compare "network" "huly-network.service" (svc "huly-agent") "")
    );
    expected = [
      "DynamicUser"
      "Group"
      "KillMode"
      "MemoryDenyWriteExecute"
      "PrivateUsers"
      "ProcSubset"
      "RestrictNamespaces"
      "StateDirectory"
      "StateDirectoryMode"
      "SystemCallFilter"
      "User"
    ];
  };
}
