# The nspawn runtime: each container of a kind runs in its own
# systemd-nspawn machine (huly-<kind>-<short uuid>), started by the agent as
# a transient unit huly-c-* through systemd and managed through machined,
# which the agent's polkit rule allows; its port reaches the host through the
# agent's bridge. Releasing the last reference stops machine and unit.
let
  # The example container program of the container SDK (go/container),
  # built from this repository with the package's own vendor hash; the
  # agent runs it inside each machine.
  exampleContainer = "examples/echo-container";
in
{
  name = "huly-net-agent-nspawn";
  globalTimeout = 1200;

  nodes.machine =
    { config, pkgs, ... }:
    let
      withExample = pkgs.huly-net.override { extraSubPackages = [ exampleContainer ]; };
    in
    {
      virtualisation.memorySize = 2048;
      environment.systemPackages = [
        config.services.huly-network.package
        pkgs.jq
      ];

      # A minimal OS tree for the machines; the program itself comes from the
      # host's /nix/store, bound into each machine.
      systemd.tmpfiles.settings."10-huly-web" = {
        "/var/lib/machines/web/etc/os-release".f = {
          mode = "0644";
          argument = "ID=huly-web";
        };
        "/var/lib/machines/web/usr".d.mode = "0755";
        "/var/lib/machines/web/tmp".d.mode = "1777";
        "/var/lib/machines/web/nix/store".d.mode = "0755";
      };

      services.huly-network.enable = true;
      services.huly-agent = {
        enable = true;
        settings.kinds.web = {
          runtime = "nspawn";
          command = "${withExample}/bin/${baseNameOf exampleContainer}";
          unused_timeout = "5s";
          nspawn = {
            directory = "/var/lib/machines/web";
            private_network = true;
            bind = [ "/nix/store:/nix/store" ];
            port = 8080;
          };
        };
      };
    };

  testScript = ''
    import json

    hulyctl = "hulyctl --network 127.0.0.1:3737 --timeout 30s"

    start_all()

    with subtest("the agent is ready and may manage its units and machines"):
        machine.wait_for_unit("huly-network.service", timeout=120)
        machine.wait_for_unit("huly-agent.service", timeout=120)
        machine.succeed("grep -q 'huly-c-' /etc/polkit-1/rules.d/10-nixos.rules", timeout=10)
        user = machine.succeed("systemctl show -P User huly-agent.service", timeout=10).strip()
        assert user == "huly-agent", f"the agent runs as {user!r}"

    with subtest("a get starts a machine in a huly-c-* unit"):
        machine.succeed(
            "systemd-run --unit=holder --property=Type=exec "
            "hulyctl --network 127.0.0.1:3737 get web --hold",
            timeout=30,
        )
        machine.wait_until_succeeds("machinectl list --no-legend | grep -q '^huly-web-'", timeout=120)
        machine.wait_until_succeeds(
            "systemctl list-units --no-legend --state=running 'huly-c-*' | grep -q .", timeout=60
        )

    with subtest("requests reach the container inside the machine"):
        uuid = machine.wait_until_succeeds(
            f"{hulyctl} --json containers --kind web | jq -er '.[0].uuid'", timeout=60
        ).strip()
        routed = json.loads(
            machine.succeed(f"{hulyctl} --json request {uuid} echo '{{\"via\": \"routed\"}}'", timeout=60)
        )
        assert "routed" in json.dumps(routed), f"routed echo answered {routed}"
        direct = json.loads(
            machine.succeed(
                f"{hulyctl} --json request --direct {uuid} echo '{{\"via\": \"direct\"}}'", timeout=60
            )
        )
        assert "direct" in json.dumps(direct), f"direct echo answered {direct}"

    with subtest("releasing the last reference stops the machine and its unit"):
        machine.succeed("systemctl stop holder.service", timeout=30)
        machine.wait_until_fails("machinectl list --no-legend | grep -q '^huly-web-'", timeout=60)
        machine.wait_until_fails(
            "systemctl list-units --no-legend --state=running 'huly-c-*' | grep -q .", timeout=60
        )
        machine.succeed("systemctl is-active huly-agent.service", timeout=10)
  '';
}
