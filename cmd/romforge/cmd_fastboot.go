package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/romforge/romforge/flash"
	"github.com/romforge/romforge/flash/fastboot"
	"github.com/romforge/romforge/flash/usb"
	"github.com/romforge/romforge/internal/failure"
)

func init() {
	// The flash command reaches devices through these (see cmd_flash.go).
	dialDevice = func(ctx context.Context, serial string) (flash.Device, io.Closer, error) {
		c, err := dialClient(ctx, serial)
		if err != nil {
			return nil, nil, err
		}
		return c, c, nil
	}
	listDevices = func(ctx context.Context) ([]string, error) {
		list, err := usb.List()
		if err != nil {
			return nil, err
		}
		// Phones sharing a serial get usb:PORT names, so each is flashed (and claimed) on its own.
		return usb.Names(list), nil
	}
	listUSBPorts = func(ctx context.Context) ([]string, error) {
		list, err := usb.List()
		if err != nil {
			return nil, err
		}
		return usb.Ports(list), nil
	}

	serialFlag := &cli.StringFlag{Name: "serial", Aliases: []string{"s"}, EnvVars: []string{"ANDROID_SERIAL"},
		Usage: "device: USB serial, tcp:HOST[:PORT] or udp:HOST[:PORT] (as fastboot -s)"}
	register(&cli.Command{
		Name:  "fastboot",
		Usage: "talk to a fastboot device directly: getvar, devices, flash, reboot",
		Subcommands: []*cli.Command{
			{
				Name:      "getvar",
				Usage:     "print a bootloader variable (\"all\" prints every one)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{serialFlag},
				Action:    runFastbootGetvar,
			},
			{
				Name:   "devices",
				Usage:  "list fastboot devices connected over USB (Linux)",
				Action: runFastbootDevices,
			},
			{
				Name:      "flash",
				Usage:     "flash one raw or sparse image to a partition, split by max-download-size (no safety checks: prefer 'romforge flash')",
				ArgsUsage: "PARTITION IMAGE",
				Flags: []cli.Flag{serialFlag,
					&cli.StringFlag{Name: "slot", Usage: "a, b or all (default: the current slot on A/B devices)"},
					&cli.StringFlag{Name: "max-download-size", Aliases: []string{"S"}, Usage: "transfer limit instead of the device's (bytes, 0x hex allowed)"},
				},
				Action: runFastbootFlash,
			},
			{
				Name:      "reboot",
				Usage:     "reboot the device (TARGET: bootloader, fastboot or recovery)",
				ArgsUsage: "[TARGET]",
				Flags:     []cli.Flag{serialFlag},
				Action:    runFastbootReboot,
			},
		},
	})
}

// dialClient connects to serial ("" → the only USB device).
func dialClient(ctx context.Context, serial string) (*fastboot.Client, error) {
	t, err := fastboot.Dial(ctx, serial)
	if err != nil {
		return nil, err
	}
	return fastboot.NewClient(t), nil
}

func runFastbootGetvar(c *cli.Context) error {
	e := envOf(c)
	if err := needArgs(c, 1, 1, "one variable name"); err != nil {
		return err
	}
	name := c.Args().First()
	cl, err := dialClient(e.ctx, c.String("serial"))
	if err != nil {
		return err
	}
	defer cl.Close()
	if name == "all" {
		vars, err := cl.GetVarAll(e.ctx)
		if err != nil {
			return err
		}
		if e.json {
			return e.printJSON(vars)
		}
		keys := make([]string, 0, len(vars))
		for k := range vars {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(e.stdout, "%s: %s\n", k, vars[k])
		}
		return nil
	}
	v, err := cl.GetVar(e.ctx, name)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(map[string]string{"name": name, "value": v})
	}
	fmt.Fprintln(e.stdout, v)
	return nil
}

func runFastbootDevices(c *cli.Context) error {
	e := envOf(c)
	list, err := usb.List()
	if err != nil {
		return err
	}
	if e.json {
		if list == nil {
			list = []usb.DeviceInfo{}
		}
		return e.printJSON(list)
	}
	if len(list) == 0 {
		e.logf("no fastboot devices on USB (network devices are reached with --serial tcp:HOST:PORT)")
		return nil
	}
	// NAME is what --serial takes: the serial, or usb:PORT for phones that share one or have none.
	names := usb.Names(list)
	tw := e.table()
	fmt.Fprintln(tw, e.bold("NAME\tSERIAL\tPORT\tUSB ID\tBUS/ADDR\tPRODUCT"))
	for i, d := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%04x:%04x\t%03d/%03d\t%s\n", names[i], d.Serial, d.Location(), d.VendorID, d.ProductID, d.Bus, d.Address, d.Product)
	}
	return tw.Flush()
}

func runFastbootFlash(c *cli.Context) error {
	e := envOf(c)
	if err := needArgs(c, 2, 2, "PARTITION IMAGE"); err != nil {
		return err
	}
	part, path := c.Args().Get(0), c.Args().Get(1)
	opt := fastboot.FlashFileOptions{Slot: c.String("slot")}
	if s := c.String("max-download-size"); s != "" {
		n, err := parseSize(s)
		if err != nil || n < 8192 {
			return usagef("fastboot flash: --max-download-size %q: want a byte count of at least 8192", s)
		}
		opt.MaxDownload = n
	}
	f, err := os.Open(path)
	if err != nil {
		return failure.Kinded(failure.ErrUsage, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	cl, err := dialClient(e.ctx, c.String("serial"))
	if err != nil {
		return err
	}
	defer cl.Close()
	task := e.reporter().Task("flash "+part, st.Size())
	written, err := cl.FlashPartition(e.ctx, part, f, st.Size(), opt, task)
	task.Done(err)
	if err != nil {
		return err
	}
	// Where the time went: the data phases of the downloads against the device's writes (the protocol
	// is serial, so a slow flash lowers the whole-flash rate whatever the link does).
	stats := cl.Stats()
	if e.json {
		return e.printJSON(map[string]any{"partitions": written, "image": path, "bytes": st.Size(),
			"downloads": stats.Downloads, "download_bytes": stats.DownloadBytes,
			"download_seconds": stats.DownloadTime.Seconds(), "flash_seconds": stats.FlashTime.Seconds()})
	}
	fmt.Fprintf(e.stdout, "flashed %s to %s\n", path, strings.Join(written, ", "))
	e.logf("%d bytes in %d download(s): %.3fs in download commands (%.1f MB/s), %.3fs in flash commands",
		stats.DownloadBytes, stats.Downloads, stats.DownloadTime.Seconds(), stats.DownloadRate()/1e6, stats.FlashTime.Seconds())
	return nil
}

func runFastbootReboot(c *cli.Context) error {
	e := envOf(c)
	if err := needArgs(c, 0, 1, "at most one TARGET"); err != nil {
		return err
	}
	target := c.Args().First()
	switch target {
	case "", "bootloader", "fastboot", "recovery":
	default:
		return usagef("fastboot reboot: target %q: want bootloader, fastboot or recovery", target)
	}
	cl, err := dialClient(e.ctx, c.String("serial"))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Reboot(e.ctx, target); err != nil {
		return err
	}
	if !e.json {
		fmt.Fprintf(e.stdout, "rebooting%s\n", map[bool]string{true: "", false: " to " + target}[target == ""])
	} else {
		return e.printJSON(map[string]string{"rebooting": target})
	}
	return nil
}
