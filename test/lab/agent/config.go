package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// fetchConfig downloads the config as Talos 1.12's metal platform does (pkg/download): every
// failure, a non-200 answer included (the metal platform sets no ErrorOnNotFound, so a 404 is
// retried too), is retried with exponential backoff in units of a second plus up to a second of
// jitter, each attempt bounded by 3 minutes, for up to 3 hours.
func fetchConfig(url string) ([]byte, error) {
	client := &http.Client{Timeout: 3 * time.Minute}
	deadline := time.Now().Add(3 * time.Hour)
	for attempt := 1; ; attempt++ {
		body, err := fetchOnce(client, url)
		if err == nil {
			return body, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		wait := time.Duration(1<<min(attempt-1, 12))*time.Second + time.Duration(rand.Int64N(int64(time.Second)))
		say("config fetch %s: attempt %d failed: %v; retrying in %s", redactURL(url), attempt, err, wait.Round(time.Millisecond))
		time.Sleep(wait)
	}
}

func fetchOnce(client *http.Client, url string) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		// The URL (and its token) is in a *url.Error; print only what went wrong.
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap()
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 32))
		return nil, fmt.Errorf("HTTP %d (failed to download config, status code %d, body %q)",
			resp.StatusCode, resp.StatusCode, string(bytes.ToValidUTF8(snippet, nil)))
	}
	return io.ReadAll(resp.Body)
}

// machineConfig is what the agent takes from the rendered documents.
type machineConfig struct {
	hostname    string
	installDisk string
	selector    bool
	sink        string   // EventSinkConfig.endpoint
	complete    bool     // has a machine (v1alpha1) document: Talos would boot with it
	addresses   []string // static addresses in any document
	macs        []string // MAC addresses the documents select links by
}

var macPattern = regexp.MustCompile(`(?i)\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b`)

// parseConfig reads a multi-document Talos config (v1alpha1 plus typed documents).
func parseConfig(data []byte) (*machineConfig, error) {
	cfg := &machineConfig{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %v", i+1, err)
		}
		if doc == nil {
			continue
		}
		kind, _ := doc["kind"].(string)
		switch {
		case doc["machine"] != nil:
			cfg.complete = true
			m := asMap(doc["machine"])
			install := asMap(m["install"])
			cfg.installDisk, _ = install["disk"].(string)
			cfg.selector = install["diskSelector"] != nil
			network := asMap(m["network"])
			if h, ok := network["hostname"].(string); ok {
				cfg.hostname = h
			}
			for _, itf := range asList(network["interfaces"]) {
				it := asMap(itf)
				cfg.addresses = append(cfg.addresses, strings_(it["addresses"])...)
				for _, vlan := range asList(it["vlans"]) {
					cfg.addresses = append(cfg.addresses, strings_(asMap(vlan)["addresses"])...)
				}
			}
		case kind == "HostnameConfig":
			if h, ok := doc["hostname"].(string); ok {
				cfg.hostname = h
			}
		case kind == "EventSinkConfig":
			cfg.sink, _ = doc["endpoint"].(string)
		default:
			for _, a := range asList(doc["addresses"]) {
				if s, ok := asMap(a)["address"].(string); ok {
					cfg.addresses = append(cfg.addresses, s)
				}
			}
		}
	}
	// The boot NIC and bond members are selected by MAC in the documents (comments are not decoded).
	var plain bytes.Buffer
	dec = yaml.NewDecoder(bytes.NewReader(data))
	for {
		var node yaml.Node
		if dec.Decode(&node) != nil {
			break
		}
		collectScalars(&node, &plain)
	}
	for _, m := range macPattern.FindAllString(plain.String(), -1) {
		cfg.macs = appendUnique(cfg.macs, strings.ToLower(m))
	}
	return cfg, nil
}

func collectScalars(n *yaml.Node, out *bytes.Buffer) {
	if n.Kind == yaml.ScalarNode {
		out.WriteString(n.Value)
		out.WriteByte('\n')
	}
	for _, c := range n.Content {
		collectScalars(c, out)
	}
}

// checkConfig decides whether the config is this machine's: the hostname belongs to the
// BareMetalHost named in metalbox.host, the install disk exists here, and the MACs it selects links
// by include one of this machine's. Returns the install disk to use.
func checkConfig(cfg *machineConfig, host string, ownMACs []string) (string, error) {
	var problems []string
	waitForDisks(10 * time.Second)
	if host != "" && cfg.hostname != "" && cfg.hostname != host && !strings.HasSuffix(cfg.hostname, "-"+host) {
		problems = append(problems, fmt.Sprintf("hostname %q is not this machine's (metalbox.host names %q)", cfg.hostname, host))
	}
	disk := cfg.installDisk
	switch {
	case disk != "":
		if !isBlockDevice(disk) {
			problems = append(problems, fmt.Sprintf("install disk %s does not exist on this machine (disks: %s)", disk, strings.Join(listDisks(), ", ")))
		}
	case cfg.selector:
		disks := listDisks()
		if len(disks) == 0 {
			problems = append(problems, "machine.install.diskSelector matches no disk: this machine has none")
		} else {
			disk = disks[0]
			say("machine.install.diskSelector: the lab agent does not evaluate selectors; using the first disk, %s", disk)
		}
	default:
		problems = append(problems, "install disk or diskSelector should be defined")
	}
	if len(cfg.macs) > 0 {
		mine := false
		for _, m := range cfg.macs {
			for _, own := range ownMACs {
				mine = mine || m == own
			}
		}
		if !mine {
			problems = append(problems, fmt.Sprintf("the config selects links by MAC %s, none of them this machine's (%s)",
				strings.Join(cfg.macs, ", "), strings.Join(ownMACs, ", ")))
		}
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("%d error(s) occurred: %s", len(problems), strings.Join(problems, "; "))
	}
	return disk, nil
}

func isBlockDevice(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func strings_(v any) []string {
	var out []string
	for _, x := range asList(v) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
