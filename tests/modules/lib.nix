# modules/lib.nix: the helpers the modules' cross-field checks rely on.
{ lib }:
let
  hl = import ../../modules/lib.nix { inherit lib; };
  ok = t: x: t.check x;
in
{
  testDurationToNs = {
    expr = map hl.durationToNs [
      "0"
      "1ns"
      "2us"
      "1µs"
      "300ms"
      "1s"
      "1.5s"
      ".5s"
      "1m30s"
      "2h"
      "1h1m1s1ms"
    ];
    expected = [
      0
      1
      2000
      1000
      300000000
      1000000000
      1.5e9
      5.0e8
      90000000000
      7200000000000
      3661001000000
    ];
  };
  testDurationType = {
    expr = map (ok hl.duration) [
      "3s"
      "0"
      "1m30s"
      "1.5h"
      "300ms"
      "3"
      "3 s"
      "-1s"
      "s"
      ""
      "3sec"
    ];
    expected = [
      true
      true
      true
      true
      true
      false
      false
      false
      false
      false
      false
    ];
  };
  testTcpListenOf = {
    expr = map hl.tcpListenOf [
      "tcp://*:3737"
      "tcp://0.0.0.0:3737"
      "tcp:127.0.0.1:80"
      "[::1]:9"
      ":9100"
      "unix:/run/x.sock"
      ""
    ];
    expected = [
      {
        host = "";
        port = 3737;
      }
      {
        host = "";
        port = 3737;
      }
      {
        host = "127.0.0.1";
        port = 80;
      }
      {
        host = "::1";
        port = 9;
      }
      {
        host = "";
        port = 9100;
      }
      null
      null
    ];
  };
  testListenStreamOf = {
    expr = map hl.listenStreamOf [
      "tcp://*:3737"
      "tcp:127.0.0.1:8080"
      "tcp:[::1]:9"
      "unix:/run/b.sock"
    ];
    expected = [
      "3737"
      "127.0.0.1:8080"
      "[::1]:9"
      "/run/b.sock"
    ];
  };
  testCollides = {
    expr = [
      (hl.collides {
        host = "";
        port = 1;
      } {
        host = "10.0.0.1";
        port = 1;
      })
      (hl.collides {
        host = "127.0.0.1";
        port = 1;
      } {
        host = "10.0.0.1";
        port = 1;
      })
      (hl.collides {
        host = "127.0.0.1";
        port = 1;
      } {
        host = "127.0.0.1";
        port = 2;
      })
    ];
    expected = [
      true
      false
      false
    ];
  };
  testEscapeExecArg = {
    expr = map hl.escapeExecArg [
      "/nix/store/x-huly/bin/huly-network"
      "--log-level=debug"
      "a b"
      "50%"
      "$HOME"
      "say \"hi\""
    ];
    expected = [
      "/nix/store/x-huly/bin/huly-network"
      "--log-level=debug"
      "\"a b\""
      "\"50%%\""
      "\"$$HOME\""
      "\"say \\\"hi\\\"\""
    ];
  };
  testAddressTypes = {
    expr = {
      zmq = map (ok hl.zmqEndpoint) [
        "tcp://*:3737"
        "tcp://[::]:3737"
        "tcp://host.example:1"
        "3737"
        "tcp://:"
      ];
      bridge = map (ok hl.bridgeAddress) [
        "tcp:127.0.0.1:8080"
        "unix:/run/x.sock"
        "tcp:[::1]:80"
        "127.0.0.1:8080"
        "unix:relative"
      ];
      hostPort = map (ok hl.optionalHostPort) [
        ""
        ":9100"
        "127.0.0.1:9100"
        "9100"
      ];
    };
    expected = {
      zmq = [
        true
        true
        true
        false
        false
      ];
      bridge = [
        true
        true
        true
        false
        false
      ];
      hostPort = [
        true
        true
        true
        false
      ];
    };
  };
}
