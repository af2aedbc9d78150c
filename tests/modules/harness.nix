# What the module suites share: evaluating modules against the stub, reading
# the generated JSON, and parsing the plain unit files of packaging/systemd.
{ lib }:
rec {
  pkgs = import ./fake-pkgs.nix { inherit lib; };

  modules = {
    network = ../../modules/huly-network.nix;
    agent = ../../modules/huly-agent.nix;
    bridge = ../../modules/huly-bridge.nix;
    all = ../../modules/default.nix;
  };

  # The configuration of a NixOS-like system made of the stub, the given
  # modules and configuration.
  eval =
    ms:
    (lib.evalModules {
      modules = [
        ./stub.nix
        { _module.args.pkgs = pkgs; }
      ]
      ++ ms;
    }).config;

  # Messages of the assertions that fail, and whether one mentions `word`.
  failed = config: map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  failsWith = word: config: lib.any (lib.hasInfix word) (failed config);

  # Whether forcing a value throws (type errors of the module system do).
  throws = x: !(builtins.tryEval (builtins.deepSeq x true)).success;

  # The JSON a generated configuration file holds.
  json = file: builtins.fromJSON file.jsonText;

  # Words of a command line (ExecStart=): the modules never quote store
  # paths or flags, so splitting on spaces is exact for them.
  words = s: lib.filter (w: w != "") (lib.splitString " " s);

  # A unit file as { Section = { Key = [ value ... ]; }; }, one value per
  # assignment in file order, as systemd reads repeated keys.
  parseUnit =
    text:
    let
      trim =
        s:
        let
          m = builtins.match "[[:space:]]*(.*[^[:space:]])[[:space:]]*" s;
        in
        if m == null then "" else builtins.head m;
      step =
        acc: raw:
        let
          line = trim raw;
          section = builtins.match "[[]([A-Za-z]+)[]]" line;
          kv = builtins.match "([A-Za-z0-9]+)=(.*)" line;
          cur = acc.sections.${acc.section} or { };
        in
        if line == "" || lib.hasPrefix "#" line || lib.hasPrefix ";" line then
          acc
        else if section != null then
          acc // { section = builtins.head section; }
        else if kv == null then
          throw "unit file: cannot parse line '${line}'"
        else
          let
            key = builtins.elemAt kv 0;
          in
          acc
          // {
            sections = acc.sections // {
              ${acc.section} = cur // {
                ${key} = (cur.${key} or [ ]) ++ [ (builtins.elemAt kv 1) ];
              };
            };
          };
    in
    (lib.foldl' step {
      section = null;
      sections = { };
    } (lib.splitString "\n" text)).sections;

  unitFile = name: parseUnit (builtins.readFile (../../packaging/systemd + "/${name}"));

  # A serviceConfig value in the unit file's spelling, as a list like
  # parseUnit's.
  unitValues =
    v:
    map (
      x:
      if x == true then
        "yes"
      else if x == false then
        "no"
      else
        toString x
    ) (lib.toList v);
}
