# Stand-ins for the few packages the modules use. `formats.json` renders the
# JSON as the real one would and keeps the text beside the fake store path,
# so tests can read what the daemon would be given.
{ lib }:
let
  fakeDrv = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    drvPath = "/nix/store/00000000000000000000000000000000-${name}.drv";
  };

  jsonValue =
    with lib.types;
    nullOr (oneOf [
      bool
      int
      float
      str
      path
      (attrsOf jsonValue)
      (listOf jsonValue)
    ])
    // {
      description = "JSON value";
    };
in
{
  huly-net = fakeDrv "huly-net-0.1.0";
  systemd = fakeDrv "systemd-258";
  coreutils = fakeDrv "coreutils-9.5";

  # Keeps the text beside the fake store path, as formats.json does.
  writeText =
    name: text:
    fakeDrv name
    // {
      outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" text)}-${name}";
      inherit text;
    };

  formats.json =
    { }:
    {
      type = jsonValue;
      generate =
        name: value:
        let
          json = builtins.toJSON value;
        in
        fakeDrv name
        // {
          outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" json)}-${name}";
          jsonText = json;
        };
    };
}
