# Two tiers from one declaration: a NixOS container with private networking
# runs a service on its loopback only; services.huly-bridge.containers
# generates the relay inside the container and the forward on the host. Data
# passes intact both ways (with half-close), and a restart of the service
# behind the bridge needs no restart of either bridge.
let
  servicePort = 8000;
  hostPort = 18000;
in
{
  name = "huly-net-bridge";
  globalTimeout = 900;

  nodes.host =
    { lib, pkgs, ... }:
    {
      virtualisation.memorySize = 1536;
      environment.systemPackages = [ pkgs.socat ];

      containers.svc = {
        autoStart = true;
        privateNetwork = true;
        hostAddress = "10.233.1.1";
        localAddress = "10.233.1.2";
        config = {
          system.stateVersion = lib.trivial.release;
          # Reads a connection to its end, then answers with the sha256 of
          # what it read: data integrity and half-close in one exchange.
          systemd.services.sha-server = {
            wantedBy = [ "multi-user.target" ];
            path = [ pkgs.coreutils ];
            serviceConfig.ExecStart = "${pkgs.socat}/bin/socat TCP-LISTEN:${toString servicePort},bind=127.0.0.1,reuseaddr,fork SYSTEM:sha256sum";
          };
        };
      };

      services.huly-bridge = {
        enable = true;
        containers.svc.ports.sha = {
          inherit servicePort hostPort;
          # Enough retries to ride out the service's restart below.
          settings.dial_retries = 10;
        };
      };
    };

  testScript = ''
    def in_svc(command):
        return f"nixos-container run svc -- {command}"

    def unit_pids():
        host_pid = host.succeed("systemctl show -P MainPID huly-bridge-svc-sha.service", timeout=10).strip()
        relay_pid = host.succeed(in_svc("systemctl show -P MainPID huly-bridge-sha.service"), timeout=30).strip()
        return host_pid, relay_pid

    def sha_through_bridge(size):
        host.succeed(f"head -c {size} /dev/urandom > /tmp/blob", timeout=60)
        want = host.succeed("sha256sum < /tmp/blob", timeout=60).split()[0]
        got = host.succeed(
            "socat -t 30 -T 60 - TCP:127.0.0.1:${toString hostPort} < /tmp/blob", timeout=120
        ).split()
        assert got and got[0] == want, f"sent sha256 {want}, service saw {got}"

    start_all()

    with subtest("both tiers come up from one declaration"):
        host.wait_for_unit("container@svc.service", timeout=180)
        host.wait_until_succeeds(in_svc("systemctl is-active sha-server.service"), timeout=120)
        host.wait_until_succeeds(in_svc("systemctl is-active huly-bridge-sha.service"), timeout=120)
        host.wait_for_unit("huly-bridge-svc-sha.service", timeout=60)
        host.wait_for_open_port(${toString hostPort}, timeout=30)
        # The relay listens on the container's own address, the service on
        # its loopback only: the same port, no clash.
        host.succeed(in_svc("ss -ltnH | grep -q '10.233.1.2:${toString servicePort}'"), timeout=30)
        host.succeed(in_svc("ss -ltnH | grep -q '127.0.0.1:${toString servicePort}'"), timeout=30)

    with subtest("data passes intact through both tiers"):
        host.wait_until_succeeds(
            "echo ping | socat -t 10 - TCP:127.0.0.1:${toString hostPort} | grep -q .", timeout=60
        )
        sha_through_bridge(16 * 1024 * 1024)
        sha_through_bridge(1)

    with subtest("a restarted service is reached without restarting a bridge"):
        before = unit_pids()
        host.succeed(in_svc("systemctl restart sha-server.service"), timeout=60)
        host.wait_until_succeeds(in_svc("systemctl is-active sha-server.service"), timeout=60)
        sha_through_bridge(4 * 1024 * 1024)
        after = unit_pids()
        assert before == after, f"a bridge restarted: MainPIDs {before} -> {after}"

    with subtest("a service that is down while a client connects is retried"):
        host.succeed(in_svc("systemctl stop sha-server.service"), timeout=60)
        host.succeed(
            "systemd-run --unit=late-client --property=Type=exec "
            "sh -c 'head -c 1024 /dev/zero | socat -t 30 -T 30 - TCP:127.0.0.1:${toString hostPort} > /tmp/late'",
            timeout=30,
        )
        host.succeed(in_svc("systemctl start sha-server.service"), timeout=60)
        host.wait_until_succeeds("test -s /tmp/late", timeout=60)
        want = host.succeed("head -c 1024 /dev/zero | sha256sum", timeout=10).split()[0]
        got = host.succeed("cat /tmp/late", timeout=10).split()[0]
        assert got == want, f"late client got {got}, want {want}"
  '';
}
