// SIMULATED Talos (metalbox lab agent): the OS under install in metalbox's boot lab.
//
// Talos images cannot be fetched on the lab's machines, so the lab boots Debian's kernel with an
// initramfs whose /init runs this program. On the wire it behaves like Talos 1.12 does for what
// metalbox watches: it reads talos.config= and talos.events.sink= from /proc/cmdline, downloads
// its config (retrying as Talos does), checks that the config is this machine's, publishes the
// event sequences Talos publishes (Talos's own protobuf types, the siderolink event-sink client,
// gRPC h2c), writes a bootable disk image onto the install disk and reboots. Booted from that
// disk it publishes the boot sequence and machine status. Every line it prints says SIMULATED.
//
// Modes, chosen from the kernel command line:
//
//	metalbox.boot=disk-bios|disk-uefi  booted from the installed disk (set by the disk's loaders)
//	metalbox.boot=rescue               the rescue system
//	talos.experimental.wipe=system     clean the system disk, then maintenance mode
//	otherwise                          netboot: fetch the config and install
package main

import (
	"fmt"
	"os"
	"time"
)

// Label starts every console line, so nobody mistakes this for a real Talos.
const Label = "[SIMULATED Talos (metalbox lab agent)]"

var started = time.Now()

func say(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "%s %s\n", Label, fmt.Sprintf(format, args...))
}

func main() {
	args, err := readCmdline("/proc/cmdline")
	if err != nil {
		say("cannot read the kernel command line: %v", err)
		idle()
	}
	mode := modeOf(args)
	say("starting (mode %s, %s)", mode, uptime())

	switch mode {
	case modeDiskBIOS, modeDiskUEFI:
		diskBoot(args, mode)
	case modeRescue:
		say("RESCUE-INIT: SIMULATED rescue system booted")
	case modeWipe:
		wipe(args)
	default:
		netboot(args)
	}
	idle()
}

// idle keeps PID 1 alive (its exit would panic the kernel) while the event publisher works on.
func idle() {
	say("idle")
	for {
		time.Sleep(time.Hour)
	}
}

func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "uptime unknown"
	}
	var up float64
	fmt.Sscanf(string(b), "%f", &up)
	return fmt.Sprintf("%.2fs after kernel start", up)
}
