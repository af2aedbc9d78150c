package client_test

import (
	"context"
	"fmt"
	"time"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/server"
)

// A network server, an agent offering "echo" containers, and a client that
// gets one and sends it a request, all in one process.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	srv := server.New(server.Options{Logger: clienttest.Quiet()})
	if err := srv.Listen("tcp://127.0.0.1:0"); err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = srv.Run(runCtx, time.Second) }()
	addr := srv.Addr().String()

	host, _ := client.Dial(addr)
	defer host.Close(ctx)
	a, _ := agent.New(agent.Options{Endpoint: "127.0.0.1:0", Listen: "127.0.0.1:0"})
	a.Register("echo", agent.NewEcho)
	defer a.Close(ctx)
	if err := a.Attach(ctx, host); err != nil {
		panic(err)
	}

	// The client side: five lines.
	c, _ := client.Dial(addr)
	defer c.Close(ctx)
	ref, _ := c.Get(ctx, "echo", client.GetOptions{UUID: "hello"})
	res, _ := ref.Request(ctx, "greet", map[string]string{"to": "world"})
	fmt.Println(string(res))
	// Output: {"uuid":"hello","operation":"greet","data":{"to":"world"},"clientId":null}
}
