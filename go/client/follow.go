package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// maxFollowRetries bounds how often a routed request on a reference is sent
// again because its container was gone when it arrived.
const maxFollowRetries = 3

// notFoundAnswer reports whether err is the network's (or an agent's)
// "Container UUID not found": the request reached no container, so it can
// be sent again once the reference has followed its container.
func notFoundAnswer(err error, uuid string) bool {
	var re *RemoteError
	return errors.As(err, &re) && strings.Contains(re.Message, "Container "+uuid+" not found")
}

// requestFollowing sends a routed request; when the container was gone (an
// agent that left the network, a container terminated by an operator), it
// waits for the reference to follow the container to its new place (at
// most the reacquire timeout) and sends it again, up to maxFollowRetries
// times. A request that reached a container is never sent twice.
func (r *ContainerRef) requestFollowing(ctx context.Context, op string, data any) (json.RawMessage, error) {
	raw, err := encodeData(data)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", op, err)
	}
	for attempt := 0; ; attempt++ {
		changed := r.Changed()
		uuid, _, released := r.current()
		if released {
			return nil, fmt.Errorf("request %s on %s: %w", op, uuid, ErrReleased)
		}
		res, err := r.c.Request(ctx, uuid, op, raw)
		if err == nil || attempt == maxFollowRetries || !notFoundAnswer(err, uuid) {
			return res, err
		}
		r.follow()
		t := time.NewTimer(r.c.opts.reacquireTimeout)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
		t.Stop()
	}
}
