package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/flash/emulator"
	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/flash/gadget"
)

func init() {
	register(&cli.Command{
		Name:  "emulate",
		Usage: "run a virtual fastboot phone (for tests, CI and demos) that the AOSP fastboot client and romforge flash to",
		Description: "The phone is built from the device catalog; its partitions are files in --state, which also keeps\n" +
			"its lock state, slot and write counter across restarts. Connect with fastboot -s tcp:HOST:PORT\n" +
			"(or udp:) or romforge --serial tcp:HOST:PORT. --listen usb (Linux, root) makes this machine a USB fastboot\n" +
			"device through configfs and FunctionFS on the first USB device controller (usb:UDC names one), so a host\n" +
			"flashes it over a real cable (or through dummy_hcd). Stop with Ctrl-C.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "device", Aliases: []string{"d"}, Required: true, Usage: "catalog codename of the phone to emulate"},
			&cli.StringSliceFlag{Name: "listen", Usage: "tcp:HOST:PORT, udp:HOST:PORT or usb[:UDC] (repeatable; default tcp:127.0.0.1:5554)"},
			&cli.StringFlag{Name: "usb-stall-on", Usage: "with --listen usb: halt the IN endpoint instead of answering the first command equal to this (fault injection)"},
			&cli.StringFlag{Name: "state", Required: true, Usage: "state directory (partitions, state.json)"},
			&cli.BoolFlag{Name: "locked", Usage: "start with the bootloader locked (new state only)"},
			&cli.BoolFlag{Name: "allow-unlock", Usage: "let 'fastboot flashing unlock' succeed"},
			&cli.StringFlag{Name: "anti", Usage: "anti-rollback value the phone reports (new state only; default 1 where enforced)"},
			&cli.StringSliceFlag{Name: "fault", Usage: "drop-after=BYTES, fail-flash=PART, latency=MS, rate=MBps or cut-after=COMMAND (repeatable)"},
			&cli.StringFlag{Name: "max-download-size", Usage: "override the catalog's max-download-size (bytes, 0x hex allowed)"},
			&cli.BoolFlag{Name: "battery-low", Usage: "report a low battery (battery-soc-ok: no)"},
		},
		Action: runEmulate,
	})
}

func runEmulate(c *cli.Context) error {
	e := envOf(c)
	if err := needArgs(c, 0, 0, "no arguments"); err != nil {
		return err
	}
	cat, err := loadCatalog()
	if err != nil {
		return err
	}
	dev, err := cat.Lookup(c.String("device"))
	if err != nil {
		return err
	}
	opt := emulator.Options{
		StateDir:    c.String("state"),
		Locked:      c.Bool("locked"),
		AllowUnlock: c.Bool("allow-unlock"),
		Anti:        c.String("anti"),
		BatteryLow:  c.Bool("battery-low"),
	}
	if s := c.String("max-download-size"); s != "" {
		n, err := parseSize(s)
		if err != nil || n < 4096 {
			return usagef("emulate: --max-download-size %q: want a byte count of at least 4096", s)
		}
		opt.MaxDownloadSize = n
	}
	for _, f := range c.StringSlice("fault") {
		if err := opt.Fault.Parse(f); err != nil {
			return err
		}
	}
	if e.verbose {
		opt.Logf = func(format string, args ...any) { e.logf(format, args...) }
	}
	d, err := emulator.New(dev, opt)
	if err != nil {
		return err
	}
	addrs := c.StringSlice("listen")
	if len(addrs) == 0 {
		addrs = []string{"tcp:127.0.0.1:5554"}
	}
	var ls []fastboot.Listener
	for _, a := range addrs {
		var l fastboot.Listener
		var err error
		if a == "usb" || strings.HasPrefix(a, "usb:") {
			gopt := gadget.Options{Serial: d.Serial(), UDC: strings.TrimPrefix(strings.TrimPrefix(a, "usb"), ":"), StallOn: c.String("usb-stall-on"), Product: "romforge " + dev.Codename}
			if len(dev.USBIDs) > 0 {
				gopt.VendorID, gopt.ProductID = uint16(dev.USBIDs[0].Vendor), uint16(dev.USBIDs[0].Product)
			}
			if e.verbose {
				gopt.Logf = func(format string, args ...any) { e.logf(format, args...) }
			}
			var g *gadget.Listener
			if g, err = gadget.Listen(gopt); err == nil {
				l = g
			}
		} else {
			l, err = fastboot.Listen(a)
		}
		if err != nil {
			for _, o := range ls {
				o.Close()
			}
			return err
		}
		ls = append(ls, l)
	}
	var listening []string
	for _, l := range ls {
		listening = append(listening, l.Addr().Network()+":"+l.Addr().String())
	}
	if e.json {
		emitJSONLine(e.stdout, map[string]any{"event": "listening", "device": dev.Codename, "serialno": d.Serial(), "listen": listening, "state": opt.StateDir})
	} else {
		fmt.Fprintf(e.stdout, "emulating %s (serial %s, %s) on %v; state in %s; Ctrl-C stops\n", dev.Codename, d.Serial(), lockWord(d.Unlocked()), listening, opt.StateDir)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(ls))
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.ServeListener(ctx, l)
			cancel()
		}()
	}
	wg.Wait()
	if !e.json {
		fmt.Fprintf(e.stdout, "stopped; %d bytes written to partitions in total\n", d.Writes())
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func lockWord(unlocked bool) string {
	if unlocked {
		return "unlocked"
	}
	return "locked"
}
