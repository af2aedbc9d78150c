# Types and helpers of the huly-net security options (CURVE keys and the
# authorized-keys file). Not a module: imported by huly-network-security.nix
# and huly-agent-security.nix.
{ lib }:
let
  inherit (lib) mkOption types;
in
rec {
  # The conventional credential name of a daemon's secret key; the daemon
  # reads it as --curve-secret-key-file credential:curve.key.
  credentialName = "curve.key";

  # A CURVE public key in Z85 text (40 characters of the Z85 alphabet).
  # In the bracket expression `]` comes first and `-` last.
  z85KeyRegex = "[]0-9a-zA-Z.:+=^!/*?&<>()[{}@%$#-]{40}";
  z85Key = types.strMatching z85KeyRegex // {
    description = "CURVE public key (40 characters of Z85 text, as `hulyctl keygen` prints it)";
  };

  # A secret key file: an absolute path outside the Nix store, as a string
  # (a Nix path literal would copy the secret into the world-readable store).
  secretKeyFile = types.nullOr (types.strMatching "/.+") // {
    description = "absolute path of a secret key file, outside the Nix store";
  };

  secretKeyFileOption =
    who:
    mkOption {
      type = secretKeyFile;
      default = null;
      example = "/etc/huly-net/${who}.key";
      description = ''
        The CURVE secret key file (as `hulyctl keygen --out PREFIX` writes
        PREFIX.key). The unit receives it as the systemd credential
        `${credentialName}` (`LoadCredential=`), so the file can stay
        readable by root only. Must not be in the Nix store.
      '';
    };

  roleType = types.enum [
    "agent"
    "client"
    "admin"
  ];

  entryType = types.submodule {
    options = {
      role = mkOption {
        type = types.either roleType (types.nonEmptyListOf roleType);
        example = "client";
        description = "`agent` (may host its kinds), `client` (may use its kinds), `admin` (everything), or a list of them.";
      };
      key = mkOption {
        type = types.either z85Key (types.enum [ "NULL" ]);
        description = "The peer's public key, or `NULL` for the rights of peers without a key that `allowNullFrom` admits.";
      };
      kinds = mkOption {
        type = types.listOf (types.strMatching "[^,[:space:]]+");
        default = [ ];
        example = [ "echo" ];
        description = "Container kinds the key may host or use; `[ \"*\" ]` for every kind. Required for agent and client, empty for admin.";
      };
      name = mkOption {
        type = types.nullOr (types.strMatching "[^\n]*");
        default = null;
        example = "alice-laptop";
        description = "Name of the key in logs, metrics and answers.";
      };
    };
  };

  # The authorized-keys line of an entry.
  entryLine =
    e:
    let
      roles = lib.concatStringsSep "," (lib.toList e.role);
      kinds = lib.optionalString (e.kinds != [ ]) " kinds=${lib.concatStringsSep "," e.kinds}";
      name = lib.optionalString (e.name != null) " # ${e.name}";
    in
    "${roles} ${e.key}${kinds}${name}";

  renderAuthorizedKeys =
    entries:
    lib.concatMapStrings (e: entryLine e + "\n") entries;

  isAdmin = e: lib.elem "admin" (lib.toList e.role);

  # Assertions on a list of entries; `opt` names the option in messages.
  entryAssertions =
    opt: entries:
    let
      keys = map (e: e.key) entries;
      dups = lib.unique (lib.filter (k: lib.count (x: x == k) keys > 1) keys);
    in
    [
      {
        assertion = dups == [ ];
        message = "${opt}: each key may be listed once (join roles as role = [ \"agent\" \"client\" ]); repeated: ${lib.concatStringsSep ", " dups}.";
      }
    ]
    ++ lib.concatMap (
      e:
      let
        label = if e.name != null then "${e.name} (${e.key})" else e.key;
      in
      [
        {
          assertion = isAdmin e || e.kinds != [ ];
          message = "${opt}: ${label} needs kinds (or [ \"*\" ] for every kind).";
        }
        {
          assertion = !(isAdmin e) || e.kinds == [ ];
          message = "${opt}: ${label} is admin, which covers every kind; drop its kinds.";
        }
        {
          assertion = !(lib.elem "*" e.kinds) || e.kinds == [ "*" ];
          message = "${opt}: ${label}: \"*\" stands alone in kinds.";
        }
      ]
    ) entries;

  # Assertions on a secret key file setting.
  secretKeyAssertions = opt: file: [
    {
      assertion = file == null || !(lib.hasPrefix "${builtins.storeDir}/" file);
      message = "${opt} (${toString file}) is in the Nix store, which every user can read; keep secret keys elsewhere (e.g. /etc/huly-net, mode 0600).";
    }
  ];
}
