# `nix develop`: the tools the Justfile and the test tiers use.
{
  mkShell,
  go,
  gopls,
  just,
  nixfmt,
  shfmt,
  shellcheck,
  socat,
  mmdebstrap,
  jq,
  treefmt,
}:
mkShell {
  packages = [
    go
    gopls
    just
    nixfmt
    shfmt
    shellcheck
    socat
    mmdebstrap
    jq
    treefmt
  ];

  # The toolchain in the shell builds the module; never fetch another one.
  env.GOTOOLCHAIN = "local";
}
