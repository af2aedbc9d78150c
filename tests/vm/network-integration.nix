# A network server, an agent and a client on three machines: readiness,
# StatusText, hulyctl get/request across machines, hostile input that must not
# crash the server, restart with re-registration, a clean stop and the
# watchdog. Runs with `nix build .#checks.x86_64-linux.network-integration`
# (Nix with KVM); the modules come from this repository (flake.nix passes
# nixosModules.default to every node).
{
  name = "huly-net-network-integration";
  globalTimeout = 900;

  nodes = {
    server = {
      services.huly-network = {
        enable = true;
        openFirewall = true;
        settings = {
          alive_timeout = "3s";
          ping_interval = "1s";
          max_frame_size = 1048576;
        };
      };
    };

    agent = {
      services.huly-agent = {
        enable = true;
        openFirewall = true;
        settings = {
          network = "server:3737";
          advertise_host = "agent";
          agent_id = "vm-agent";
          kinds.echo = {
            runtime = "builtin";
            builtin = "echo";
          };
        };
      };
    };

    client =
      { config, pkgs, ... }:
      {
        environment.systemPackages = [
          config.services.huly-network.package
          pkgs.jq
          pkgs.socat
        ];
      };
  };

  testScript = ''
      import json

      hulyctl = "hulyctl --network server:3737 --timeout 10s"

      def get_and_request(kind, payload):
          got = json.loads(client.succeed(f"{hulyctl} --json get {kind}", timeout=30))
          assert got["uuid"], f"no uuid in {got}"
          out = client.succeed(
              f"{hulyctl} --json request {got['uuid']} echo '{json.dumps(payload)}'", timeout=30
          )
          return got, json.loads(out)

      def server_alive():
          server.succeed("systemctl is-active huly-network.service", timeout=10)
          restarts = server.succeed("systemctl show -P NRestarts huly-network.service", timeout=10).strip()
          assert restarts == "0", f"huly-network restarted {restarts} times"

      def printf_escape(data):
          return "".join(f"\\x{b:02x}" for b in data)

      # A ZMTP 3.0 greeting for the NULL mechanism (64 bytes), then a command
      # frame header announcing 2^62 bytes: the server must close the
      # connection before allocating anything.
      greeting = (
          b"\xff" + b"\x00" * 7 + b"\x01\x7f" + b"\x03\x00"
          + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
      )
      huge_frame = b"\x06" + (1 << 62).to_bytes(8, "big")

      start_all()

      with subtest("the server is ready when systemctl says so"):
          server.wait_for_unit("huly-network.service", timeout=120)
          server.wait_for_open_port(3737, timeout=30)
          status = server.succeed("systemctl show -P StatusText huly-network.service", timeout=10).strip()
          assert status != "", "huly-network sets no StatusText"

      with subtest("the watchdog is armed and fed"):
          server.succeed("test \"$(systemctl show -P WatchdogUSec huly-network.service)\" = 30s", timeout=10)
          server.wait_until_succeeds(
              "test \"$(systemctl show -P WatchdogTimestampMonotonic huly-network.service)\" -gt 0", timeout=30
          )

      with subtest("the agent is ready after it registered"):
          agent.wait_for_unit("huly-agent.service", timeout=120)
          client.wait_until_succeeds(
              f"{hulyctl} --json agents | jq -e 'tostring | contains(\"vm-agent\")'", timeout=60
          )
          server.wait_until_succeeds(
              "systemctl show -P StatusText huly-network.service | grep -q '1 agent'", timeout=30
          )

      with subtest("get and request across machines"):
          got, out = get_and_request("echo", {"hello": "vm"})
          assert "hello" in json.dumps(out), f"echo answered {out}"
          assert "agent" in got["endpoint"], f"endpoint {got['endpoint']} does not name the agent's host"

      with subtest("hostile input does not crash the server"):
          client.succeed("head -c 65536 /dev/urandom | socat -u -t 2 - TCP:server:3737 || true", timeout=30)
          client.succeed(
              f"printf '{printf_escape(greeting + huge_frame)}' | socat -t 2 - TCP:server:3737 >/dev/null || true",
              timeout=30,
          )
          # A greeting and then silence: the handshake deadline closes it.
          client.succeed(
              f"printf '{printf_escape(greeting)}' | socat -t 7 - TCP:server:3737 >/dev/null || true",
              timeout=30,
          )
          server_alive()
          get_and_request("echo", {"after": "garbage"})

      with subtest("restart: the agent registers again and requests work"):
          server.systemctl("restart huly-network.service")
          server.wait_for_unit("huly-network.service", timeout=60)
          client.wait_until_succeeds(
              f"{hulyctl} --json agents | jq -e 'tostring | contains(\"vm-agent\")'", timeout=30
          )
          client.wait_until_succeeds(
              f"{hulyctl} --json get echo | jq -e .uuid", timeout=30
          )
          get_and_request("echo", {"after": "restart"})

      with subtest("a clean stop"):
          server.succeed("systemctl stop huly-network.service", timeout=60)
          result = server.succeed("systemctl show -P Result huly-network.service", timeout=10).strip()
          assert result == "success", f"stop ended with Result={result}"
          server.fail("journalctl -u huly-network.service -o cat | grep -E '^(panic|fatal error):'", timeout=10)
    '';
}
