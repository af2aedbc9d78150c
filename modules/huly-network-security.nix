# Security options of services.huly-network: the server's CURVE key pair,
# the authorized-keys file and the networks NULL peers are admitted from.
# Imported by huly-network.nix.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.huly-network;
  sl = import ./security-lib.nix { inherit lib; };
  inherit (lib) mkOption types;
  opt = "services.huly-network";

  secured = cfg.curve.secretKeyFile != null;
  keysList = lib.isList cfg.authorizedKeys;
  # Managed files are linked at a stable path, so that a changed list
  # reloads the service (SIGHUP) instead of restarting it.
  etcName = "huly-net/network-authorized-keys";
  managedKeys =
    if keysList then
      pkgs.writeText "huly-network-authorized-keys" (sl.renderAuthorizedKeys cfg.authorizedKeys)
    else if builtins.isPath cfg.authorizedKeys then
      cfg.authorizedKeys
    else
      null;
  keysPath =
    if cfg.authorizedKeys == null then
      null
    else if managedKeys != null then
      "/etc/${etcName}"
    else
      cfg.authorizedKeys;
  everywhere = [
    "0.0.0.0/0"
    "::/0"
  ];
  openNets = lib.filter (c: lib.elem c everywhere) cfg.allowNullFrom;
in
{
  options.services.huly-network = {
    curve.secretKeyFile = sl.secretKeyFileOption "network" // {
      description = ''
        The server's CURVE secret key file. Setting it turns security on:
        every peer must complete a CURVE handshake with a key listed in
        `authorizedKeys` (peers without a key only from `allowNullFrom`).
        The unit receives the file as the systemd credential `curve.key`.
        Peers need the matching public key (PREFIX.pub) as their
        `curve.serverKey`.
      '';
    };

    authorizedKeys = mkOption {
      type = types.nullOr (types.either (types.listOf sl.entryType) types.path);
      default = null;
      example = [
        {
          role = "agent";
          key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
          kinds = [ "echo" ];
          name = "build-host";
        }
        {
          role = "admin";
          key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";
          name = "ops";
        }
      ];
      description = ''
        Who may do what on a secured network: a list of entries, or an
        authorized-keys file (see docs/security.md for its format). A list
        or a Nix path is linked at /etc/${etcName} and a change
        reloads the service (SIGHUP: sessions of keys still listed stay,
        sessions of removed keys are closed). A path given as a string is
        read where it is; run `systemctl reload huly-network` after editing
        it.
      '';
    };

    allowNullFrom = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "127.0.0.1/32" ];
      description = ''
        Networks (CIDR) from which peers without a CURVE key, such as
        TypeScript 0.7 peers, are still admitted on a secured network. They
        get the rights of the `NULL` entry of `authorizedKeys`, or by
        default roles agent and client on every kind.
      '';
    };
  };

  config = lib.mkIf cfg.enable (lib.mkMerge [
    {
      assertions =
        sl.secretKeyAssertions "${opt}.curve.secretKeyFile" cfg.curve.secretKeyFile
        ++ lib.optionals keysList (sl.entryAssertions "${opt}.authorizedKeys" cfg.authorizedKeys)
        ++ [
          {
            assertion = !secured || cfg.authorizedKeys != null;
            message = "${opt}.curve.secretKeyFile turns security on, which needs ${opt}.authorizedKeys (a list of entries or a file); without it every peer would be refused.";
          }
          {
            assertion = secured || cfg.authorizedKeys == null;
            message = "${opt}.authorizedKeys has no effect without ${opt}.curve.secretKeyFile (security is off).";
          }
        ];
      warnings =
        lib.optional (!secured && cfg.allowNullFrom != [ ])
          "${opt}.allowNullFrom has no effect without ${opt}.curve.secretKeyFile: with security off every peer is admitted."
        ++ lib.optional (secured && keysList && !(lib.any (e: sl.isAdmin e && e.key != "NULL") cfg.authorizedKeys))
          "${opt}.authorizedKeys lists no admin key: nobody can list or watch the whole network or run operator commands."
        ++ lib.optional (secured && openNets != [ ])
          "${opt}.allowNullFrom contains ${lib.concatStringsSep ", " openNets}: every peer without a key is admitted, from anywhere.";
    }

    (lib.mkIf secured {
      services.huly-network.settings = {
        curve_secret_key_file = "credential:${sl.credentialName}";
      }
      // lib.optionalAttrs (keysPath != null) { authorized_keys = toString keysPath; }
      // lib.optionalAttrs (cfg.allowNullFrom != [ ]) { allow_null_from = cfg.allowNullFrom; };

      environment.etc = lib.mkIf (managedKeys != null) {
        ${etcName}.source = managedKeys;
      };

      systemd.services.huly-network = {
        reloadTriggers = lib.optional (managedKeys != null) managedKeys;
        serviceConfig = {
          LoadCredential = [ "${sl.credentialName}:${cfg.curve.secretKeyFile}" ];
          ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        };
      };
    })
  ]);
}
