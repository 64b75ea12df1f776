package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/ci"
	"github.com/romforge/romforge/internal/failure"
)

func init() {
	register(&cli.Command{
		Name:  "ci",
		Usage: "helpers for CI pipelines",
		Subcommands: []*cli.Command{{
			Name:  "matrix",
			Usage: "print a GitHub Actions matrix JSON (one job per device and release source)",
			Flags: []cli.Flag{
				&cli.StringSliceFlag{Name: "devices", Usage: "devices (repeatable, or a comma list; default: all with a source)"},
				&cli.StringFlag{Name: "source", Usage: "only sources with this name"},
			},
			Action: func(c *cli.Context) error {
				e := envOf(c)
				cat, err := loadCatalog()
				if err != nil {
					return err
				}
				names := nameList(c, "devices")
				m, err := ci.Build(cat, ci.Options{Devices: names, Source: c.String("source")})
				if err != nil {
					return failure.Kinded(failure.ErrUsage, err)
				}
				// One line: it goes straight into $GITHUB_OUTPUT as matrix=<json>.
				b, err := json.Marshal(m)
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, string(b))
				return nil
			},
		}},
	})
}
