# Security options of services.huly-agent: the agent's CURVE key pair and
# the network's public key. Imported by huly-agent.nix.
{
  config,
  lib,
  ...
}:
let
  cfg = config.services.huly-agent;
  sl = import ./security-lib.nix { inherit lib; };
  inherit (lib) mkOption types;
  opt = "services.huly-agent";
  secured = cfg.curve.secretKeyFile != null;
in
{
  options.services.huly-agent.curve = {
    secretKeyFile = sl.secretKeyFileOption "agent" // {
      description = ''
        The agent's CURVE secret key file, for a network with security on.
        Its public key (PREFIX.pub) must be listed in the network's
        authorized keys with role `agent` and the kinds this agent hosts.
        The unit receives the file as the systemd credential `curve.key`.
        Needs `curve.serverKey`.
      '';
    };
    serverKey = mkOption {
      type = types.nullOr sl.z85Key;
      default = null;
      example = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
      description = "The network's CURVE public key (its PREFIX.pub); the agent refuses a server that cannot prove it.";
    };
  };

  config = lib.mkIf cfg.enable (lib.mkMerge [
    {
      assertions = sl.secretKeyAssertions "${opt}.curve.secretKeyFile" cfg.curve.secretKeyFile ++ [
        {
          assertion = secured == (cfg.curve.serverKey != null);
          message = "${opt}.curve.secretKeyFile and ${opt}.curve.serverKey go together: a CURVE client needs its own key and the network's public key.";
        }
      ];
    }
    (lib.mkIf secured {
      services.huly-agent.settings = {
        curve_secret_key_file = "credential:${sl.credentialName}";
        curve_server_key = cfg.curve.serverKey;
      };
      systemd.services.huly-agent.serviceConfig.LoadCredential = [
        "${sl.credentialName}:${cfg.curve.secretKeyFile}"
      ];
    })
  ]);
}
