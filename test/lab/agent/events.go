package main

// The event sequences, the same ones src/sim/talos-events.ts publishes for a simulated machine
// (talos.md §5), built from Talos's own generated types.

import (
	"fmt"

	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/protobuf/proto"
)

// unix.Reboot commands as Talos reports them in RestartEvent.cmd.
const (
	rebootKexec   = 0x45584543
	rebootRestart = 0x01234567
)

func seq(name string, action machine.SequenceEvent_Action) proto.Message {
	return &machine.SequenceEvent{Sequence: name, Action: action}
}

// seqFailed is the FATAL NOOP a failed sequence ends with; after a reboot task its message is
// "sequence failed: unix.Reboot(<cmd>)", which is how Sidero and metalbox see a finished install.
func seqFailed(name, message string) proto.Message {
	return &machine.SequenceEvent{
		Sequence: name,
		Action:   machine.SequenceEvent_NOOP,
		Error:    &common.Error{Code: common.Code_FATAL, Message: "sequence failed: " + message},
	}
}

func phase(name string, action machine.PhaseEvent_Action) proto.Message {
	return &machine.PhaseEvent{Phase: name, Action: action}
}

func phases(names ...string) []proto.Message {
	var out []proto.Message
	for _, n := range names {
		out = append(out, phase(n, machine.PhaseEvent_START), phase(n, machine.PhaseEvent_STOP))
	}
	return out
}

func task(name string, action machine.TaskEvent_Action) proto.Message {
	return &machine.TaskEvent{Task: name, Action: action}
}

func stage(s machine.MachineStatusEvent_MachineStage, ready bool, unmet ...*machine.MachineStatusEvent_MachineStatus_UnmetCondition) proto.Message {
	return &machine.MachineStatusEvent{
		Stage:  s,
		Status: &machine.MachineStatusEvent_MachineStatus{Ready: ready, UnmetConditions: unmet},
	}
}

func address(hostname string, addresses []string) proto.Message {
	return &machine.AddressEvent{Hostname: hostname, Addresses: addresses}
}

const (
	seqStart  = machine.SequenceEvent_START
	seqStop   = machine.SequenceEvent_STOP
	phStart   = machine.PhaseEvent_START
	phStop    = machine.PhaseEvent_STOP
	taskStart = machine.TaskEvent_START
	taskStop  = machine.TaskEvent_STOP
)

// initializeUntilConfig is the start of every boot's initialize sequence, up to the config phase
// that waits for the machine config.
func initializeUntilConfig() []proto.Message {
	return append(initializeStart(), phase("config", phStart))
}

// initializeStart: the initialize sequence's phases before the config (and wipeDisks) phases.
func initializeStart() []proto.Message {
	out := []proto.Message{seq("initialize", seqStart), stage(machine.MachineStatusEvent_BOOTING, false)}
	return append(out, phases("logger", "systemRequirements", "integrity", "etc", "earlyServices", "machined")...)
}

// configLoadedUntilInstaller: the config phase done, the install sequence up to the installer.
func configLoadedUntilInstaller(hostname string, addresses []string) []proto.Message {
	out := []proto.Message{
		phase("config", phStop),
		address(hostname, addresses),
		seq("initialize", seqStop),
		seq("install", seqStart),
	}
	out = append(out, phases("env")...)
	return append(out,
		phase("install", phStart),
		stage(machine.MachineStatusEvent_INSTALLING, false),
		task("install", taskStart),
	)
}

// installFinish: from the installer's end to the kexec into the installed system.
func installFinish() []proto.Message {
	out := []proto.Message{task("install", taskStop), phase("install", phStop)}
	out = append(out, phases("meta", "saveMeta", "volumeFinalize", "stopEverything")...)
	return append(out,
		phase("kexec", phStart),
		stage(machine.MachineStatusEvent_REBOOTING, false),
		task("kexecPrepare", taskStart),
		task("kexecPrepare", taskStop),
		phase("kexec", phStop),
		phase("reboot", phStart),
		task("reboot", taskStart),
		&machine.RestartEvent{Cmd: rebootKexec},
		seqFailed("install", fmt.Sprintf("unix.Reboot(%x)", rebootKexec)),
		seq("install", seqStop),
	)
}

// installFailed: the installer failed; Talos ends the install sequence with a FATAL NOOP whose
// message is the error (no unix.Reboot).
func installFailed(message string) []proto.Message {
	return []proto.Message{
		task("install", taskStop),
		phase("install", phStop),
		seqFailed("install", message),
		seq("install", seqStop),
	}
}

// configRejected: the served config was not accepted; Talos stays in the initialize sequence.
func configRejected(message string) []proto.Message {
	return []proto.Message{
		&machine.ConfigValidationErrorEvent{Error: message},
		seqFailed("initialize", message),
	}
}

// configLoadFailed: the config could not be parsed.
func configLoadFailed(message string) []proto.Message {
	return []proto.Message{
		&machine.ConfigLoadErrorEvent{Error: message},
		seqFailed("initialize", message),
	}
}

// maintenance: no config source, so Talos's config acquisition enters the maintenance service.
func maintenance() []proto.Message {
	return []proto.Message{
		task("runningMaintenance", taskStart),
		stage(machine.MachineStatusEvent_MAINTENANCE, false),
	}
}

// wipeSystemDisk: the initialize sequence's wipeDisks phase (talos.experimental.wipe=system).
func wipeStart() []proto.Message {
	return []proto.Message{phase("wipeDisks", phStart), task("wipeSystemDisk", taskStart)}
}

func wipeStop() []proto.Message {
	return []proto.Message{task("wipeSystemDisk", taskStop), phase("wipeDisks", phStop)}
}

// diskBoot: the first boot from disk: boot sequence, running but not ready, then ready.
func diskBootEvents(hostname string, addresses []string) []proto.Message {
	out := []proto.Message{
		address(hostname, addresses),
		seq("boot", seqStart),
		stage(machine.MachineStatusEvent_BOOTING, false),
	}
	out = append(out, phases("saveStateEncryptionConfig", "mountState", "startEverything")...)
	return append(out,
		seq("boot", seqStop),
		stage(machine.MachineStatusEvent_RUNNING, false,
			&machine.MachineStatusEvent_MachineStatus_UnmetCondition{Name: "nodeReady", Reason: "node not ready"}),
		stage(machine.MachineStatusEvent_RUNNING, true),
	)
}
