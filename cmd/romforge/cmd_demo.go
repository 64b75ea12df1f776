package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/demo"
)

func init() {
	register(&cli.Command{
		Name:  "demo",
		Usage: "run the whole job offline: sample ROM → GitHub-shaped release → fetch → build → flash an emulated phone → read back",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "keep", Usage: "keep the artifacts (sample ROM, bundle, emulator state) in this folder"},
		},
		Action: func(c *cli.Context) error {
			e := envOf(c)
			start := time.Now()
			out := e.stdout
			if e.json || e.quiet {
				out = nil
			}
			res, err := demo.Run(e.ctx, demo.Options{Dir: c.String("keep"), Out: out, Progress: e.reporter(), Version: currentVersion().Version})
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(map[string]any{"scenarios": res, "seconds": time.Since(start).Seconds()})
			}
			fmt.Fprintf(e.stdout, "\ndemo finished in %.1fs: every sample ROM was fetched, hardened, flashed and proven clean on the device.\n", time.Since(start).Seconds())
			if k := c.String("keep"); k != "" {
				fmt.Fprintf(e.stdout, "artifacts kept in %s\n", k)
			}
			return nil
		},
	})
}
