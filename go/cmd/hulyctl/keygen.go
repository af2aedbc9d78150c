package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/huly-net/huly-net/go/curve"
)

func (a *app) keygenCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out PREFIX",
		Short: "Make a CURVE key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub",
		Long: `keygen makes a CURVE key pair for a secured network and writes the
secret key to PREFIX.key (mode 0600) and the public key to PREFIX.pub, both
as 40-character Z85 text (the form libzmq uses). It prints the public key,
which goes into the network's authorized keys (or, for the network's own
pair, into every peer's --curve-server-key). Existing files are never
overwritten. keygen needs no network.`,
		Args: exactArgs(0),
		RunE: action(func(*cobra.Command, []string) error {
			if out == "" {
				return usageError("keygen needs --out PREFIX (writes PREFIX.key and PREFIX.pub)")
			}
			for _, p := range []string{out + ".key", out + ".pub"} {
				if _, err := os.Lstat(p); err == nil {
					return fmt.Errorf("%s exists; keygen never overwrites a key (remove it or choose another --out)", p)
				} else if !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("check %s: %w", p, err)
				}
			}
			kp, err := curve.GenerateKeyPair()
			if err != nil {
				return err
			}
			if err := curve.WriteKeyPair(out, kp); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(map[string]string{
					"public_key":      kp.Public.String(),
					"secret_key_file": out + ".key",
					"public_key_file": out + ".pub",
				})
			}
			if _, err := fmt.Fprintln(a.stdout, kp.Public.String()); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "prefix of the files to write: PREFIX.key and PREFIX.pub")
	return cmd
}
