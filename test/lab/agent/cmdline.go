package main

import (
	"net/url"
	"os"
	"strings"
)

// Kernel arguments the agent reads.
const (
	argConfig    = "talos.config"            // config URL (Talos)
	argSink      = "talos.events.sink"       // host:port of the event sink (Talos)
	argWipe      = "talos.experimental.wipe" // "system": clean the system disk (Talos)
	argHost      = "metalbox.host"           // namespace/name of the BareMetalHost (metalbox)
	argImage     = "metalbox.lab.image"      // URL of the disk image to install (lab only)
	argBoot      = "metalbox.boot"           // disk-bios, disk-uefi or rescue (lab loaders)
	modeNetboot  = "netboot"
	modeWipe     = "wipe"
	modeRescue   = "rescue"
	modeDiskBIOS = "disk-bios"
	modeDiskUEFI = "disk-uefi"
)

// Cmdline holds the key=value arguments of /proc/cmdline (the first value of a repeated key wins,
// as Talos's procfs reads it).
type Cmdline map[string]string

func readCmdline(path string) (Cmdline, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseCmdline(string(b)), nil
}

func parseCmdline(s string) Cmdline {
	args := Cmdline{}
	for _, field := range strings.Fields(s) {
		key, value, _ := strings.Cut(field, "=")
		if _, seen := args[key]; !seen {
			args[key] = value
		}
	}
	return args
}

func modeOf(args Cmdline) string {
	switch args[argBoot] {
	case modeDiskBIOS, modeDiskUEFI, modeRescue:
		return args[argBoot]
	}
	if args[argWipe] != "" {
		return modeWipe
	}
	return modeNetboot
}

// hostName is the BareMetalHost's name from metalbox.host=<namespace>/<name>.
func (c Cmdline) hostName() string {
	v := c[argHost]
	if i := strings.LastIndex(v, "/"); i >= 0 {
		return v[i+1:]
	}
	return v
}

// redactURL hides the query (metalbox's one-time token) of a URL before it is printed.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	u.User = nil
	return u.String()
}
