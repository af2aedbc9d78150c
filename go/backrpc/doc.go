// Package backrpc is the wire protocol of the Huly network (release line
// 0.7): the frames of one message, and the session life cycle on both ends
// of a ROUTER/DEALER pair — hello with an alive timeout, ping/pong,
// askHello, retry, close, request ids, back-requests and events. It knows
// nothing of agents or containers: a Server takes a handler for requests, a
// Client takes one for back-requests and events. The same Client talks to a
// network server and to an agent endpoint.
//
// A message is three frames, op, id and payload; the reference client adds
// an empty fourth frame to hello, ping, close and event, and the ROUTER side
// adds the routing id. EncodeClient and EncodeServer write exactly what the
// reference writes; Decode accepts what it accepts.
//
// Where this package differs from the TypeScript reference, on purpose and
// without an unmodified 0.7 peer noticing:
//
//   - The server lets MaxInflight requests (default 1024) run per client,
//     not 25, and answers the next one "retry 1", not "retry <in flight>":
//     a TypeScript client waits one tick instead of about 13 s.
//   - A request whose payload is not JSON, or that lacks its payload frame,
//     is answered with responseError; the reference does not answer at all.
//   - A client that says hello from a new connection keeps its session:
//     requests in flight are answered on the new connection and are not run
//     twice. A hello with another client id on a connection ends the old
//     client id's session (OnClientClosed).
//   - Back-requests to a connection that is lost fail at once, and a
//     response is accepted only from the client the back-request went to.
//   - The server answers a hello with {"aliveTimeout":N,"capabilities":[...]}
//     (HelloInfo: the alive timeout granted, capped by MaxAliveTimeout, and
//     what it supports) where the reference's payload is empty; the
//     reference client reads only the id frame of that answer.
//   - A hello whose client id is longer than MaxClientIDLen is answered
//     with responseError and gets no session. At most MaxDetachedSessions
//     sessions of disconnected clients are kept. A session that ends
//     (close, silence, eviction) has its connection closed; one dropped for
//     silence is sent askHello first.
//   - A server that is shutting down does not answer the requests its
//     shutdown cancelled, so that clients resend them to the next server.
//   - The client resends its pending requests (same ids) after a new server
//     id, as the reference does, and also after a reconnection to the same
//     server, whose answers may have been lost with the old connection. A
//     request pending across a server change is sent once, after
//     OnServerChanged returns (the reference sends a re-get issued from its
//     onRegister twice).
//   - A retry's wait is capped (MaxRetryDelay, default 2 s).
//   - A client whose server has sent nothing for ServerTimeout (default
//     10 s) drops the connection and makes a new one.
//   - Bad answers (a response that is not JSON) fail the request with an
//     error instead of leaving it pending for ever.
package backrpc
