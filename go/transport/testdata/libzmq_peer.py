"""A real libzmq peer (pyzmq) for the transport's interoperability tests.

Modes:
  dealer ADDR IDENTITY|-  connect a DEALER (with or without a routing id, as
                          the TypeScript client), with ZMTP heartbeats on;
                          send two 3-frame requests, the second after enough
                          heartbeats passed that a missing PONG would have
                          dropped the connection; print each reply as JSON.
  router                  bind a ROUTER on 127.0.0.1, print its port, echo
                          one message back with " ok" appended to each frame.
  curve-dealer ADDR SERVERKEY
                          a DEALER with a fresh CURVE key pair: print its
                          public key, then as "dealer" (two requests).
  curve-refused ADDR SERVERKEY
                          a DEALER with a fresh CURVE key pair: print its
                          public key, send one request and print "refused"
                          when the connection ends before its handshake
                          succeeded ("accepted" if it succeeds).
  curve-router            a CURVE ROUTER with a fresh key pair: print its
                          public key and port, echo one message as "router"
                          and print the client's public key (User-Id).
  echo-server CURVE|NULL  bench peer: a ROUTER echoing every message; prints
                          its public key (or -) and port.
  echo-bench ADDR KEY N   bench peer: a DEALER (CURVE when KEY is not -)
                          sending N requests, 256 in flight; prints the
                          connect time and the rate.
"""
import json
import sys
import time

import zmq


def dealer(addr, identity, server_key=None):
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    if server_key is not None:
        pub, sec = zmq.curve_keypair()
        s.curve_publickey, s.curve_secretkey = pub, sec
        s.curve_serverkey = server_key.encode()
        print(pub.decode(), flush=True)
    s.setsockopt(zmq.LINGER, 0)
    if identity != "-":
        s.setsockopt(zmq.ROUTING_ID, identity.encode())
    # Heartbeats every 50 ms, and drop the connection if a PONG is late.
    s.setsockopt(zmq.HEARTBEAT_IVL, 50)
    s.setsockopt(zmq.HEARTBEAT_TIMEOUT, 300)
    s.setsockopt(zmq.RCVTIMEO, 10000)
    s.connect(addr)
    for i in range(2):
        s.send_multipart([b"1", ("req-%d" % i).encode(), b'["al",{}]'])
        reply = s.recv_multipart()
        print(json.dumps([f.decode() for f in reply]), flush=True)
        if i == 0:
            # Let libzmq exchange several PING/PONG; this is the peer's
            # own pacing, not a test synchronisation.
            time.sleep(0.6)
    s.close()
    ctx.term()


def router(curve=False):
    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 10000)
    auth = None
    if curve:
        # A ZAP handler accepting any key, so that libzmq tells the
        # application the client's key (User-Id).
        from zmq.auth.thread import ThreadAuthenticator
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)
        pub, sec = zmq.curve_keypair()
        s.curve_server = True
        s.curve_publickey, s.curve_secretkey = pub, sec
        print(pub.decode(), flush=True)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    frames = s.recv_multipart(copy=False)
    s.send_multipart([frames[0]] + [f.bytes + b" ok" for f in frames[1:]])
    out = {"identity": frames[0].bytes.hex()}
    if curve:
        out["user"] = frames[1].get("User-Id")
    print(json.dumps(out), flush=True)
    time.sleep(0.2)
    s.close()
    if auth is not None:
        auth.stop()
    ctx.term()


def refused(addr, server_key):
    import zmq.utils.monitor as monitor
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    pub, sec = zmq.curve_keypair()
    s.curve_publickey, s.curve_secretkey = pub, sec
    s.curve_serverkey = server_key.encode()
    print(pub.decode(), flush=True)
    mon = s.get_monitor_socket()
    s.connect(addr)
    s.send_multipart([b"1", b"req", b'["al",{}]'])
    # libzmq reports an ERROR command as a failed handshake only when its
    # reason is a 3-digit ZAP status; any other reason closes the
    # connection before the handshake succeeded.
    failed = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
              | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_DISCONNECTED)
    deadline = time.time() + 10
    while time.time() < deadline:
        if mon.poll(int((deadline - time.time()) * 1000)) == 0:
            break
        ev = monitor.recv_monitor_message(mon)
        if ev["event"] & failed:
            print("refused", flush=True)
            break
        if ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            print("accepted", flush=True)
            break
    s.disable_monitor()
    mon.close()
    s.close()
    ctx.term()


def echo_server(mech):
    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SNDHWM, 0)
    s.setsockopt(zmq.RCVHWM, 0)
    key = "-"
    if mech == "CURVE":
        pub, sec = zmq.curve_keypair()
        s.curve_server = True
        s.curve_publickey, s.curve_secretkey = pub, sec
        key = pub.decode()
    port = s.bind_to_random_port("tcp://127.0.0.1")
    print(key, flush=True)
    print(port, flush=True)
    while True:
        s.send_multipart(s.recv_multipart())


def echo_bench(addr, key, n):
    n = int(n)
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SNDHWM, 0)
    s.setsockopt(zmq.RCVHWM, 0)
    if key != "-":
        pub, sec = zmq.curve_keypair()
        s.curve_publickey, s.curve_secretkey = pub, sec
        s.curve_serverkey = key.encode()
    msg = [b"1", b"5f1c9f3e-0b7a-4b7e-9a55-1d2c3b4a5e6f-12", b'["cs",["bench-0","echo",{"n":1}]]']
    t0 = time.perf_counter()
    s.connect(addr)
    s.send_multipart(msg)
    s.recv_multipart()
    connect = time.perf_counter() - t0
    t0 = time.perf_counter()
    sent = recv = 0
    while recv < n:
        while sent < n and sent - recv < 256:
            s.send_multipart(msg)
            sent += 1
        s.recv_multipart()
        recv += 1
    rate = n / (time.perf_counter() - t0)
    print(json.dumps({"connect_ms": connect * 1000, "rate": rate}), flush=True)
    s.close()
    ctx.term()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "dealer":
        dealer(sys.argv[2], sys.argv[3])
    elif mode == "curve-dealer":
        dealer(sys.argv[2], "-", sys.argv[3])
    elif mode == "curve-refused":
        refused(sys.argv[2], sys.argv[3])
    elif mode == "curve-router":
        router(curve=True)
    elif mode == "echo-server":
        echo_server(sys.argv[2])
    elif mode == "echo-bench":
        echo_bench(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        router()
