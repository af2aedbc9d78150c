// Package network is the core of a huly network server: agents, containers,
// references, orphans, pending starts and network events, with the rules of
// the 0.7 protocol (PROTOCOL.md §7). It does no I/O and starts no
// goroutines: time comes from a Clock, and calls to agents (back-requests)
// go through an AgentCaller that the server glue implements over the wire.
//
// # Mapping of the wire methods
//
// The glue decodes params with the Decode* helpers and calls:
//
//	ar  RegisterAgent(client, DecodeRegistration(params)) → [uuid to terminate]
//	au  UnregisterAgent(client, DecodeUUIDParams(params)) → "ok"
//	al  Agents()                                         → [AgentInfo]
//	ak  Kinds()                                          → [kind], unique and sorted
//	cl  Containers(DecodeListParams(params))             → [ContainerRecord]; "" (null) lists all
//	gg  Get(ctx, client, p.Kind, p.Request)              → [uuid, ref], p = DecodeGetParams(params)
//	cr  Release(client, DecodeUUIDParams(params))        → "ok"
//	cs  Route(ctx, DecodeRouteParams(params))            → the container's result
//
// and, for the session life cycle:
//
//	hello            ClientConnected(client), SetClientAliveTimeout(client, aliveTimeout)
//	connection lost  ClientDisconnected(client) (its agents get no work)
//	any message      ClientSeen(client)   (keeps the agents it hosts alive)
//	close / timeout  ClientGone(client)   (releases its references)
//	every period     Tick(ctx)            → Event to broadcast unless Empty
//
// Errors for a kind nobody offers and for an unknown container carry the
// reference's texts ("No suitable agents found for container KIND",
// "Container UUID not found"); errors.Is matches them with
// ErrNoSuitableAgents and ErrContainerNotFound.
//
// # Rules
//
// Registration (ar): first registration of a container uuid wins; a later
// agent listing it is told to terminate its copy (the HA mechanism). The
// same agent re-registering updates what changed, and loses what it no
// longer lists.
//
// Get (gg): an existing container of the requested uuid, else a pending
// start of that uuid and kind, else (without uuid) a pending start of the
// kind whose labels cover the requested ones is joined; otherwise an agent
// offering the kind is chosen round-robin and asked. The lock is never held
// during a back-request. The caller holds a reference (one per client and
// container) until Release or ClientGone.
//
// References: a container whose last reference is released becomes an
// orphan; a new reference rescues it; Tick terminates orphans older than the
// unused timeout (back-request ct) and announces their removal. Containers
// an agent registered and nobody ever referenced are not orphans: the agent
// keeps them (pinned and HA containers).
//
// Liveness: an agent lives while the client hosting it is seen; Tick removes
// an agent not seen for longer than the alive timeout (or the longer one its
// client asked for) with its containers. While the hosting client's
// connection is gone (ClientDisconnected until ClientConnected) its agents
// are not chosen by gets and routes to their containers fail at once
// (ErrAgentUnreachable); a container another reachable agent stands by for
// is removed at the disconnect, for the standby to claim.
//
// Ownership: an agent belongs to the session that registered it while that
// session lives (ClientConnected until ClientGone); ar and au for it from
// another client are refused (ErrAgentOwned).
//
// Events are merged per agent and per container into one batch per Tick: a
// removal wins over later updates, an addition swallows later updates (with
// their newer data). A removal followed by an addition becomes an update for
// a container (holders follow it) and an addition for an agent.
//
// # Differences from the TypeScript reference
//
// Deliberate, and invisible to an unmodified 0.7 peer except as fixes:
// records of containers started by gg carry the real endpoint (the reference
// stores ""), ak has no duplicates, cl with a null kind lists every
// container, an agent's removal is announced even when it had no
// containers, a re-registration that changes nothing is not announced,
// releasing a reference one does not hold orphans nothing, an agent's re-add
// is not swallowed by its removal in one batch, a gg answer naming a
// container another agent owns keeps the first owner, and a late au from a
// session that no longer hosts the agent is ignored.
//
// Endpoint references are in ref.go: constructors that write the exact key
// orders of the reference, and ParseEndpointRef, which accepts any order.
package network
