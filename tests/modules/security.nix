# The security options of services.huly-network and services.huly-agent.
{ lib, h }:
let
  keyA = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
  keyB = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
  keyC = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";

  network =
    cfg:
    h.eval [
      h.modules.network
      { services.huly-network = { enable = true; } // cfg; }
    ];
  agent =
    cfg:
    h.eval [
      h.modules.agent
      { services.huly-agent = { enable = true; } // cfg; }
    ];
  nsc = c: c.systemd.services.huly-network.serviceConfig;
  asc = c: c.systemd.services.huly-agent.serviceConfig;
  conf = c: h.json c.services.huly-network.configFile;
  aconf = c: h.json c.services.huly-agent.configFile;

  entries = [
    {
      role = "agent";
      key = keyA;
      kinds = [ "echo" ];
      name = "build-host";
    }
    {
      role = [
        "client"
        "agent"
      ];
      key = keyB;
      kinds = [
        "echo"
        "db"
      ];
    }
    {
      role = "admin";
      key = keyC;
      name = "ops";
    }
  ];

  secured = network {
    curve.secretKeyFile = "/etc/huly-net/network.key";
    authorizedKeys = entries;
    allowNullFrom = [ "127.0.0.1/32" ];
  };
  securedFile = network {
    curve.secretKeyFile = "/etc/huly-net/network.key";
    authorizedKeys = "/var/lib/huly-keys/authorized_keys";
  };
  noAdmin = network {
    curve.secretKeyFile = "/etc/huly-net/network.key";
    authorizedKeys = lib.take 2 entries;
    allowNullFrom = [ "0.0.0.0/0" ];
  };
  off = network { };
  nullOnly = network { allowNullFrom = [ "10.0.0.0/8" ]; };

  # The assertion messages of a secured network with one entry (and, for
  # keyB, the entry that repeats it).
  checkEntry =
    e:
    h.failed (network {
      curve.secretKeyFile = "/k";
      authorizedKeys = [ e ] ++ lib.optional (e.key == keyB) (builtins.elemAt entries 1);
    });
in
{
  testSecuredReadsTheKeyAsACredential = {
    expr = (nsc secured).LoadCredential;
    expected = [ "curve.key:/etc/huly-net/network.key" ];
  };
  testSecuredSettings = {
    expr = {
      inherit (conf secured) curve_secret_key_file authorized_keys allow_null_from;
    };
    expected = {
      curve_secret_key_file = "credential:curve.key";
      authorized_keys = "/etc/huly-net/network-authorized-keys";
      allow_null_from = [ "127.0.0.1/32" ];
    };
  };
  testAuthorizedKeysFileFromEntries = {
    expr = secured.environment.etc."huly-net/network-authorized-keys".source.text;
    expected = ''
      agent ${keyA} kinds=echo # build-host
      client,agent ${keyB} kinds=echo,db
      admin ${keyC} # ops
    '';
  };
  testChangedKeysReloadNotRestart = {
    expr = {
      triggers = secured.systemd.services.huly-network.reloadTriggers;
      reload = (nsc secured).ExecReload;
    };
    expected = {
      triggers = [ secured.environment.etc."huly-net/network-authorized-keys".source ];
      reload = "/nix/store/00000000000000000000000000000000-coreutils-9.5/bin/kill -HUP $MAINPID";
    };
  };
  testSecuredNoFailuresNoWarnings = {
    expr = {
      failed = h.failed secured;
      inherit (secured) warnings;
    };
    expected = {
      failed = [ ];
      warnings = [ ];
    };
  };
  testStringPathIsReadInPlace = {
    expr = {
      keys = (conf securedFile).authorized_keys;
      etc = securedFile.environment.etc;
      triggers = securedFile.systemd.services.huly-network.reloadTriggers;
    };
    expected = {
      keys = "/var/lib/huly-keys/authorized_keys";
      etc = { };
      triggers = [ ];
    };
  };
  testNixPathIsLinkedAndReloads = {
    expr =
      let
        c = network {
          curve.secretKeyFile = "/etc/huly-net/network.key";
          authorizedKeys = ./security.nix;
        };
      in
      {
        keys = (conf c).authorized_keys;
        source = c.environment.etc."huly-net/network-authorized-keys".source;
        triggers = c.systemd.services.huly-network.reloadTriggers;
      };
    expected = {
      keys = "/etc/huly-net/network-authorized-keys";
      source = ./security.nix;
      triggers = [ ./security.nix ];
    };
  };
  testOffChangesNothing = {
    expr = {
      keys = lib.filter (lib.hasPrefix "curve") (lib.attrNames (conf off));
      cred = (nsc off) ? LoadCredential;
      reload = (nsc off) ? ExecReload;
      etc = off.environment.etc;
    };
    expected = {
      keys = [ ];
      cred = false;
      reload = false;
      etc = { };
    };
  };
  testNoAdminAndOpenNullWarn = {
    expr = map (w: lib.hasInfix "no admin key" w || lib.hasInfix "0.0.0.0/0" w) noAdmin.warnings;
    expected = [
      true
      true
    ];
  };
  testAllowNullWithoutSecurityWarns = {
    expr = lib.any (lib.hasInfix "allowNullFrom has no effect") nullOnly.warnings;
    expected = true;
  };
  testSecretKeyNeedsAuthorizedKeys = {
    expr = h.failsWith "needs services.huly-network.authorizedKeys" (network {
      curve.secretKeyFile = "/etc/huly-net/network.key";
    });
    expected = true;
  };
  testAuthorizedKeysNeedSecretKey = {
    expr = h.failsWith "has no effect without" (network { authorizedKeys = entries; });
    expected = true;
  };
  testSecretKeyOutsideTheStore = {
    expr = h.failsWith "is in the Nix store" (network {
      curve.secretKeyFile = "/nix/store/abc-network.key";
      authorizedKeys = entries;
    });
    expected = true;
  };
  testSecretKeyIsNotAPathLiteral = {
    expr = h.throws (nsc (network {
      curve.secretKeyFile = ./security.nix;
      authorizedKeys = entries;
    })).LoadCredential;
    expected = true;
  };
  testEntryChecks = {
    expr = map checkEntry [
      {
        role = "client";
        key = keyA;
      }
      {
        role = "admin";
        key = keyA;
        kinds = [ "echo" ];
      }
      {
        role = "client";
        key = keyA;
        kinds = [
          "*"
          "echo"
        ];
      }
      {
        role = "client";
        key = keyB;
        kinds = [ "x" ];
      }
    ];
    expected = [
      [ "services.huly-network.authorizedKeys: ${keyA} needs kinds (or [ \"*\" ] for every kind)." ]
      [ "services.huly-network.authorizedKeys: ${keyA} is admin, which covers every kind; drop its kinds." ]
      [ "services.huly-network.authorizedKeys: ${keyA}: \"*\" stands alone in kinds." ]
      [ "services.huly-network.authorizedKeys: each key may be listed once (join roles as role = [ \"agent\" \"client\" ]); repeated: ${keyB}." ]
    ];
  };
  testBadKeyIsATypeError = {
    expr = h.throws
      (network {
        curve.secretKeyFile = "/k";
        authorizedKeys = [
          {
            role = "admin";
            key = "too-short";
          }
        ];
      }).services.huly-network.authorizedKeys;
    expected = true;
  };
  testNullEntry = {
    expr =
      (network {
        curve.secretKeyFile = "/k";
        authorizedKeys = entries ++ [
          {
            role = "client";
            key = "NULL";
            kinds = [ "echo" ];
          }
        ];
      }).environment.etc."huly-net/network-authorized-keys".source.text;
    expected = ''
      agent ${keyA} kinds=echo # build-host
      client,agent ${keyB} kinds=echo,db
      admin ${keyC} # ops
      client NULL kinds=echo
    '';
  };

  testAgentKeys = {
    expr =
      let
        c = agent {
          curve = {
            secretKeyFile = "/etc/huly-net/agent.key";
            serverKey = keyC;
          };
        };
      in
      {
        cred = (asc c).LoadCredential;
        inherit (aconf c) curve_secret_key_file curve_server_key;
        failed = h.failed c;
      };
    expected = {
      cred = [ "curve.key:/etc/huly-net/agent.key" ];
      curve_secret_key_file = "credential:curve.key";
      curve_server_key = keyC;
      failed = [ ];
    };
  };
  testAgentKeyWithoutServerKeyFails = {
    expr = h.failsWith "go together" (agent { curve.secretKeyFile = "/etc/huly-net/agent.key"; });
    expected = true;
  };
  testAgentServerKeyWithoutKeyFails = {
    expr = h.failsWith "go together" (agent { curve.serverKey = keyC; });
    expected = true;
  };
  testAgentOffChangesNothing = {
    expr = {
      keys = lib.filter (lib.hasPrefix "curve") (lib.attrNames (aconf (agent { })));
      cred = (asc (agent { })) ? LoadCredential;
    };
    expected = {
      keys = [ ];
      cred = false;
    };
  };
}
