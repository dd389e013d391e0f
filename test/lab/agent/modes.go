package main

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"
)

// waitForAddress returns this machine's IPv4 addresses once DHCP (udhcpc in /init) gave one;
// Talos's event sink also starts only once the node has an address.
func waitForAddress(limit time.Duration) []string {
	deadline := time.Now().Add(limit)
	for {
		var out []string
		ifaces, _ := net.Interfaces()
		for _, itf := range ifaces {
			if itf.Flags&net.FlagLoopback != 0 {
				continue
			}
			addrs, _ := itf.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					out = append(out, ipn.IP.String())
				}
			}
		}
		if len(out) > 0 || time.Now().After(deadline) {
			return out
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// defaultHostname is what Talos calls a machine without a configured hostname (talos-<mac bytes>).
func defaultHostname() string {
	for _, m := range ownMACs() {
		parts := strings.Split(m, ":")
		if len(parts) == 6 {
			return "talos-" + strings.Join(parts[3:], "")
		}
	}
	return "talos"
}

func startPublisher(args Cmdline) (*Publisher, []string) {
	addrs := waitForAddress(60 * time.Second)
	if len(addrs) == 0 {
		say("no IPv4 address after 60 s (did DHCP fail?)")
	} else {
		say("address %s", strings.Join(addrs, ", "))
	}
	sink := args[argSink]
	if sink == "" {
		say("no %s= on the kernel command line: events are kept but not sent", argSink)
	} else {
		say("event sink %s", sink)
	}
	return NewPublisher(sink), addrs
}

func netboot(args Cmdline) {
	pub, addrs := startPublisher(args)
	pub.Publish(initializeUntilConfig()...)

	url := args[argConfig]
	if url == "" || url == "none" {
		say("no %s= on the kernel command line: maintenance mode (no config)", argConfig)
		pub.Publish(address(defaultHostname(), addrs))
		pub.Publish(maintenance()...)
		settle(pub)
		return
	}
	say("fetching config from %s", redactURL(url))
	data, _ := fetchConfig(url)
	if data == nil {
		say("config fetch gave up after 3 hours: maintenance mode (no config)")
		pub.Publish(maintenance()...)
		settle(pub)
		return
	}
	say("config fetched (%d bytes, %s)", len(data), uptime())

	cfg, err := parseConfig(data)
	if err != nil {
		msg := fmt.Sprintf("failed to load config: %v", err)
		say("CONFIG REJECTED: %s", msg)
		pub.Publish(configLoadFailed(msg)...)
		settle(pub)
		return
	}
	host := args.hostName()
	say("config documents: hostname %q, install disk %q, event sink %q, static addresses [%s], MACs [%s]",
		cfg.hostname, cfg.installDisk, cfg.sink, strings.Join(cfg.addresses, ", "), strings.Join(cfg.macs, ", "))
	disk, err := checkConfig(cfg, host, ownMACs())
	if err != nil {
		say("CONFIG REJECTED (not this machine's config): %v", err)
		pub.Publish(configRejected(err.Error())...)
		settle(pub)
		return
	}
	say("config accepted: this is %s (metalbox.host=%s), installing to %s", orDefault(cfg.hostname, "(no hostname)"), args[argHost], disk)
	if cfg.sink != "" {
		pub.SetEndpoint(cfg.sink)
	}
	hostname := orDefault(cfg.hostname, defaultHostname())
	pub.Publish(configLoadedUntilInstaller(hostname, addrs)...)

	if err := install(args, disk, Record{
		Hostname:    hostname,
		EventSink:   orDefault(cfg.sink, args[argSink]),
		Host:        args[argHost],
		InstalledAt: time.Now().UTC().Format(time.RFC3339),
	}); err != nil {
		say("INSTALL FAILED: %v", err)
		pub.Publish(installFailed(err.Error())...)
		settle(pub)
		return
	}
	pub.Publish(installFinish()...)
	if !pub.Drain(10 * time.Second) {
		say("event sink: not every event was acknowledged within 10 s; rebooting anyway (as Talos does)")
	}
	say("rebooting (%s)", uptime())
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART); err != nil {
		say("reboot failed: %v", err)
	}
}

func install(args Cmdline, disk string, rec Record) error {
	image := args[argImage]
	if image == "" {
		return fmt.Errorf("no %s= on the kernel command line: nothing to install", argImage)
	}
	say("install: writing %s to %s", redactURL(image), disk)
	start := time.Now()
	n, err := writeImage(image, disk)
	if err != nil {
		return fmt.Errorf("writing the image to %s: %w", disk, err)
	}
	if err := writeRecord(disk, rec); err != nil {
		return err
	}
	say("install done: %d bytes written to %s in %s; record: hostname %s, event sink %s",
		n, disk, time.Since(start).Round(time.Millisecond), rec.Hostname, orDefault(rec.EventSink, "(none)"))
	return nil
}

// wipe is talos.experimental.wipe=system: Talos's initialize sequence wipes the system disk
// (wipeDisks phase) before the config phase; with no config source it enters maintenance.
// (Talos 1.12 then reboots from the wipe task; the lab agent stays up in maintenance so the
// controller can see the report and power the machine off.)
func wipe(args Cmdline) {
	pub, addrs := startPublisher(args)
	pub.Publish(initializeStart()...)
	if args[argWipe] != "system" {
		say("%s=%s: only \"system\" is simulated", argWipe, args[argWipe])
	}
	pub.Publish(wipeStart()...)
	disks := systemDisks()
	if len(disks) == 0 {
		say("wipe: no system disk found (disks: %s)", strings.Join(listDisks(), ", "))
	}
	for _, d := range disks {
		say("wipe: resetting system disk %s", d)
		if err := wipeDisk(d); err != nil {
			say("WIPE FAILED on %s: %v", d, err)
			pub.Publish(seqFailed("initialize", fmt.Sprintf("wiping %s: %v", d, err)))
			settle(pub)
			return
		}
	}
	syscall.Sync()
	say("wipe done (%s)", strings.Join(disks, ", "))
	pub.Publish(wipeStop()...)
	pub.Publish(phase("config", phStart), address(defaultHostname(), addrs))
	// Then config acquisition, as on any boot: a config without a machine document (metalbox's
	// cleaning boot serves only an EventSinkConfig) is incomplete, so Talos keeps it and waits in
	// maintenance mode, reporting to its sink.
	if url := args[argConfig]; url != "" && url != "none" {
		say("fetching config from %s", redactURL(url))
		if data, _ := fetchConfig(url); data != nil {
			say("config fetched (%d bytes, %s)", len(data), uptime())
			if cfg, err := parseConfig(data); err == nil {
				if cfg.sink != "" {
					pub.SetEndpoint(cfg.sink)
				}
				if cfg.complete {
					say("the config is complete, but the lab agent installs only without a wipe: idling")
				} else {
					say("config incomplete (no machine document)")
				}
			}
		}
	}
	pub.Publish(maintenance()...)
	say("maintenance mode (no config)")
	settle(pub)
}

func diskBoot(args Cmdline, mode string) {
	say("DISK-INIT: booted from disk (%s)", mode)
	rec, disk, err := findRecord()
	if err != nil {
		say("DISK-INIT: %v; using the kernel command line's event sink", err)
		rec = &Record{Hostname: defaultHostname(), EventSink: args[argSink]}
	} else {
		say("DISK-INIT: record on %s: hostname %s, event sink %s, installed %s", disk, rec.Hostname, orDefault(rec.EventSink, "(none)"), rec.InstalledAt)
	}
	args[argSink] = rec.EventSink
	pub, addrs := startPublisher(args)
	pub.Publish(diskBootEvents(rec.Hostname, addrs)...)
	settle(pub)
}

// settle waits for the sink to acknowledge everything published so far and says so (tests wait
// for this line before they look at what the sink received).
func settle(pub *Publisher) {
	if pub.Drain(2 * time.Minute) {
		say("event sink: all events delivered")
	} else {
		say("event sink: events still undelivered after 2 minutes; still retrying")
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
