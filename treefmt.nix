# treefmt configuration (`nix fmt`, `just fmt`, checks.formatting).
_: {
  projectRootFile = "flake.nix";

  programs = {
    gofmt.enable = true;
    goimports.enable = true;
    nixfmt.enable = true;
    deadnix.enable = true;
    shfmt.enable = true;
    shellcheck.enable = true;
    just.enable = true;
  };

  # Our shell scripts have no extension; name them so shfmt and shellcheck
  # see them.
  settings.formatter =
    let
      scripts = [
        "*.sh"
        "*.bash"
        "nix/vendor-hash"
        "tests/run"
        "tests/*/run"
        "tests/*/check"
        "tests/systemd/dev"
        ".ci/run"
      ];
    in
    {
      shfmt.includes = scripts;
      shellcheck.includes = scripts;
    };

  settings.global.excludes = [
    "LICENSE"
    "go/**/testdata/**"
  ];
}
