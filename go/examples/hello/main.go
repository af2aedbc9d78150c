// Command hello is the smallest client: it gets an echo container and sends
// it one request. Start a local network with an echo agent first:
//
//	go run ./cmd/hulyctl serve-echo --with-network
//	go run ./examples/hello
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/huly-net/huly-net/go/client"
)

func main() {
	addr := flag.String("network", "127.0.0.1:3737", "network server HOST:PORT")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := run(ctx, *addr, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

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
