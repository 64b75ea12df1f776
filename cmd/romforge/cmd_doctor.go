package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/doctor"
	"github.com/romforge/romforge/internal/failure"
)

func init() {
	register(&cli.Command{
		Name:  "doctor",
		Usage: "check USB access, cache dir, free disk and optional tools; print one fix per problem",
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 0, 0, "no arguments"); err != nil {
				return err
			}
			e := envOf(c)
			checks := doctor.Run(doctor.Options{CacheDir: e.cache})
			n := doctor.Problems(checks)
			if e.json {
				if err := e.printJSON(map[string]any{"checks": checks, "problems": n}); err != nil {
					return err
				}
			} else {
				for _, ch := range checks {
					mark := "ok  "
					switch {
					case !ch.OK && ch.Optional:
						mark = "note"
					case !ch.OK:
						mark = "FAIL"
					}
					fmt.Fprintf(e.stdout, "[%s] %-16s %s\n", mark, ch.Name, ch.Detail)
					if !ch.OK && ch.Fix != "" {
						fmt.Fprintf(e.stdout, "       fix: %s\n", ch.Fix)
					}
				}
			}
			if n > 0 {
				return failure.Kinded(failure.ErrFindings, fmt.Errorf("doctor: %d problem(s) found", n))
			}
			return nil
		},
	})
}
