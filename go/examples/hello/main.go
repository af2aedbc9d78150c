// Command hello is the smallest client: it gets an echo container and sends
// it one request. Start a local network with an echo agent first:
//
//	go run ./cmd/hulyctl serve-echo --with-network
//	go run ./examples/hello
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/examples/internal/example"
)

func main() { example.Main("hello", run) }

func run(ctx context.Context, addr string, out io.Writer) error {
	c, err := client.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close(context.Background()) // releases the reference; bounded

	ref, err := c.Get(ctx, "echo", client.GetOptions{UUID: "hello"})
	if err != nil {
		return err
	}
	res, err := ref.Request(ctx, "greet", map[string]string{"to": "world"})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, string(res))
	return nil
}
