# Two agents declare the same stateless (HA) container; the network keeps the
# first. When the machine of the owner crashes, the other agent serves the
# same uuid within alive_timeout + 2 s; the crashed agent comes back with the
# agent id it kept in its state directory.
let
  aliveTimeout = 3;

  agent = name: {
    services.huly-agent = {
      enable = true;
      openFirewall = true;
      settings = {
        network = "server:3737";
        advertise_host = name;
        kinds.echo = {
          runtime = "builtin";
          builtin = "echo";
          pinned = [
            {
              uuid = "ha-echo";
              stateless = true;
            }
          ];
        };
      };
    };
  };
in
{
  name = "huly-net-agent-failover";
  globalTimeout = 900;

  nodes = {
    server = {
      services.huly-network = {
        enable = true;
        openFirewall = true;
        settings = {
          alive_timeout = "${toString aliveTimeout}s";
          ping_interval = "1s";
        };
      };
    };
    agent1 = agent "agent1";
    agent2 = agent "agent2";
    client =
      { config, pkgs, ... }:
      {
        environment.systemPackages = [
          config.services.huly-network.package
          pkgs.jq
        ];
      };
  };

  testScript = ''
    import json

    hulyctl = "hulyctl --network server:3737 --timeout 5s"
    agents = {"agent1": agent1, "agent2": agent2}

    def owner_of_ha():
        got = json.loads(client.succeed(f"{hulyctl} --json get echo --uuid ha-echo", timeout=30))
        assert got["uuid"] == "ha-echo", f"got {got}"
        owners = [name for name in agents if name in got["endpoint"]]
        assert len(owners) == 1, f"endpoint {got['endpoint']} names no single agent"
        return owners[0]

    def request_ha():
        return client.succeed(
            f"{hulyctl} --json request ha-echo echo '{{\"n\": 1}}'", timeout=30
        )

    start_all()

    with subtest("both agents register"):
        server.wait_for_unit("huly-network.service", timeout=120)
        for machine in agents.values():
            machine.wait_for_unit("huly-agent.service", timeout=120)
        client.wait_until_succeeds(f"{hulyctl} --json agents | jq -e 'length == 2'", timeout=60)

    with subtest("one of them owns the HA container"):
        owner = owner_of_ha()
        other = "agent2" if owner == "agent1" else "agent1"
        request_ha()
        agent_id = agents[owner].succeed("cat /var/lib/huly-agent/agent-id", timeout=10).strip()
        assert agent_id, "the agent did not persist its id"

    with subtest("the other agent serves it within alive_timeout + 2 s"):
        agents[owner].crash()
        client.wait_until_succeeds(
            f"hulyctl --network server:3737 --timeout 1s --json get echo --uuid ha-echo"
            f" | jq -e '.endpoint | contains(\"{other}\")'",
            timeout=${toString (aliveTimeout + 2)},
        )
        request_ha()

    with subtest("the crashed agent returns with the same agent id"):
        agents[owner].start()
        agents[owner].wait_for_unit("huly-agent.service", timeout=180)
        again = agents[owner].succeed("cat /var/lib/huly-agent/agent-id", timeout=10).strip()
        assert again == agent_id, f"agent id changed from {agent_id} to {again}"
        client.wait_until_succeeds(
            f"{hulyctl} --json agents | jq -e 'tostring | contains(\"{agent_id}\")'", timeout=60
        )
        client.wait_until_succeeds(f"{hulyctl} --json agents | jq -e 'length == 2'", timeout=60)
        request_ha()
  '';
}
