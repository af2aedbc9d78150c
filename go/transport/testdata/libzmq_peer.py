"""A real libzmq peer (pyzmq) for the transport's interoperability tests.

Modes:
  dealer ADDR IDENTITY|-  connect a DEALER (with or without a routing id, as
                          the TypeScript client), with ZMTP heartbeats on;
                          send two 3-frame requests, the second after enough
                          heartbeats passed that a missing PONG would have
                          dropped the connection; print each reply as JSON.
  router                  bind a ROUTER on 127.0.0.1, print its port, echo
                          one message back with " ok" appended to each frame.
"""
import json
import sys
import time

import zmq


def dealer(addr, identity):
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
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


def router():
    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 10000)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    frames = s.recv_multipart()
    s.send_multipart([frames[0]] + [f + b" ok" for f in frames[1:]])
    print(json.dumps({"identity": frames[0].hex()}), flush=True)
    time.sleep(0.2)
    s.close()
    ctx.term()


if __name__ == "__main__":
    if sys.argv[1] == "dealer":
        dealer(sys.argv[2], sys.argv[3])
    else:
        router()
