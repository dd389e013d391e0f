package main

// The installed system's disk, as the lab's disk.img lays it out (test/lab/build-images.sh): an MBR
// with partition 1 the FAT boot partition (SYSLINUX + UKI) and partition 2 a small raw record
// partition (type 0xda) that stands in for Talos's STATE: what the installed system needs to know
// (event sink, hostname). It holds no config and no secrets.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	recordMagic   = "METALBOX-LAB-RECORD v1\n"
	recordSize    = 4096
	recordPartNum = 2
	recordType    = 0xda
)

// Record is what the install leaves for the installed system.
type Record struct {
	Hostname    string `json:"hostname"`
	EventSink   string `json:"eventSink"`
	Host        string `json:"metalboxHost,omitempty"`
	InstalledAt string `json:"installedAt"`
}

type mbrPart struct {
	typ          byte
	start, count uint64 // in 512-byte sectors
}

// readMBR returns the four primary partition entries of a disk (none when it has no MBR).
func readMBR(f io.ReaderAt) ([4]mbrPart, bool) {
	var parts [4]mbrPart
	sector := make([]byte, 512)
	if _, err := f.ReadAt(sector, 0); err != nil || sector[510] != 0x55 || sector[511] != 0xaa {
		return parts, false
	}
	for i := range parts {
		e := sector[446+16*i:]
		parts[i] = mbrPart{typ: e[4], start: uint64(binary.LittleEndian.Uint32(e[8:])), count: uint64(binary.LittleEndian.Uint32(e[12:]))}
	}
	return parts, true
}

// listDisks names this machine's whole disks (/dev/vda, /dev/sda, /dev/nvme0n1), sorted.
func listDisks() []string {
	entries, _ := os.ReadDir("/sys/block")
	var out []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "vd") || strings.HasPrefix(n, "sd") || strings.HasPrefix(n, "nvme") || strings.HasPrefix(n, "xvd") {
			out = append(out, "/dev/"+n)
		}
	}
	sort.Strings(out)
	return out
}

// waitForDisks waits until the kernel has probed at least one disk (virtio_blk probes after
// /init loaded it), at most limit.
func waitForDisks(limit time.Duration) []string {
	deadline := time.Now().Add(limit)
	for {
		if disks := listDisks(); len(disks) > 0 || time.Now().After(deadline) {
			return disks
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// writeImage streams the disk image at url onto disk, retrying the download a few times as
// Talos's installer retries its image pull.
func writeImage(url, disk string) (int64, error) {
	var lastErr error
	for attempt := 1; attempt <= 5; attempt++ {
		n, err := writeImageOnce(url, disk)
		if err == nil {
			return n, nil
		}
		lastErr = err
		say("install: writing the image failed (attempt %d): %v", attempt, err)
		time.Sleep(time.Duration(attempt) * 2 * time.Second)
	}
	return 0, lastErr
}

func writeImageOnce(url, disk string) (int64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("image download answered HTTP %d", resp.StatusCode)
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := io.CopyBuffer(f, resp.Body, make([]byte, 1<<20))
	if err != nil {
		return n, err
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("image truncated: %d of %d bytes", n, resp.ContentLength)
	}
	return n, f.Sync()
}

// writeRecord stores the record in the record partition of the image just written to disk.
func writeRecord(disk string, r Record) error {
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	parts, ok := readMBR(f)
	p := parts[recordPartNum-1]
	if !ok || p.typ != recordType || p.count*512 < recordSize {
		return fmt.Errorf("%s has no record partition (MBR partition %d of type %#x): the image is not the lab's disk.img", disk, recordPartNum, recordType)
	}
	body, _ := json.Marshal(r)
	buf := make([]byte, recordSize)
	n := copy(buf, recordMagic)
	if n+len(body)+1 > recordSize {
		return errors.New("record too large")
	}
	copy(buf[n:], append(body, '\n'))
	if _, err := f.WriteAt(buf, int64(p.start*512)); err != nil {
		return err
	}
	return f.Sync()
}

// findRecord looks for the record on every disk; returns it and the disk it is on.
func findRecord() (*Record, string, error) {
	for _, disk := range waitForDisks(10 * time.Second) {
		r, err := readRecord(disk)
		if err == nil {
			return r, disk, nil
		}
	}
	return nil, "", fmt.Errorf("no disk among %s holds a lab record", strings.Join(listDisks(), ", "))
}

func readRecord(disk string) (*Record, error) {
	f, err := os.Open(disk)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	parts, ok := readMBR(f)
	p := parts[recordPartNum-1]
	if !ok || p.typ != recordType {
		return nil, errors.New("no record partition")
	}
	buf := make([]byte, recordSize)
	if _, err := f.ReadAt(buf, int64(p.start*512)); err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(buf, []byte(recordMagic)) {
		return nil, errors.New("record partition is empty")
	}
	body := bytes.TrimRight(buf[len(recordMagic):], "\x00\n")
	var r Record
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// wipeDisk zeroes what makes a disk bootable and what the install left on it: the partition
// table (the first MiB, and the last MiB where a backup GPT would be), the start of every
// partition (boot sector, FATs, root directory) and the whole record partition.
func wipeDisk(disk string) error {
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	const mib = 1 << 20
	type span struct{ off, len int64 }
	spans := []span{{0, min(mib, size)}}
	if size > 2*mib {
		spans = append(spans, span{size - mib, mib})
	}
	if parts, ok := readMBR(f); ok {
		for i, p := range parts {
			if p.count == 0 {
				continue
			}
			n := int64(p.count * 512)
			if i != recordPartNum-1 || p.typ != recordType {
				n = min(n, 8*mib)
			}
			spans = append(spans, span{int64(p.start * 512), n})
		}
	}
	zero := make([]byte, mib)
	for _, s := range spans {
		for off := s.off; off < s.off+s.len && off < size; off += mib {
			n := min(int64(mib), s.off+s.len-off, size-off)
			if _, err := f.WriteAt(zero[:n], off); err != nil {
				return err
			}
		}
	}
	return f.Sync()
}

// systemDisks are the disks that carry the lab's installed layout (Talos wipes its system disk,
// the one with its partitions; it leaves other disks alone).
func systemDisks() []string {
	var out []string
	for _, disk := range waitForDisks(10 * time.Second) {
		f, err := os.Open(disk)
		if err != nil {
			continue
		}
		parts, ok := readMBR(f)
		f.Close()
		if ok && (parts[0].typ == 0xef || parts[recordPartNum-1].typ == recordType) {
			out = append(out, disk)
		}
	}
	return out
}

// macs of this machine's network interfaces (lower case, colon separated).
func ownMACs() []string {
	var out []string
	entries, _ := os.ReadDir("/sys/class/net")
	for _, e := range entries {
		if e.Name() == "lo" {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/sys/class/net", e.Name(), "address"))
		if err == nil {
			out = append(out, strings.ToLower(strings.TrimSpace(string(b))))
		}
	}
	return out
}
