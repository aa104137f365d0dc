// Command nvidia-config-parse parses an NVIDIA device-plugin config file
// exactly as the device plugin does, with NVIDIA's own loader
// (github.com/NVIDIA/k8s-device-plugin/api/config/v1, spec.NewConfig over a
// urfave/cli context carrying the plugin's flags and --config-file), followed
// by the plugin's DisableResourceNamingInConfig and its NVML-free flag checks.
//
// Usage: nvidia-config-parse [-e NAME=VALUE]... FILE
//
// -e sets an env var of the plugin container (MIG_STRATEGY, MPS_ROOT, ...).
// By default the container env is the chart's default (MPS_ROOT=/run/nvidia/mps).
//
// Output (stdout, exit 0): {"config": <v1.Config>, "sharingStrategy": ...,
// "replicas": N, "resources": [{"name", "replicas", "renamed"}],
// "failRequestsGreaterThanOne": bool}.
// On a config the plugin rejects: exit 1, the plugin's error on stderr.
// Usage errors: exit 2.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"gpu-slicing-eks/tests/cluster/go/nvidia/internal/emu"
)

func main() {
	env := map[string]string{}
	for k, v := range emu.ChartDefaultEnv {
		env[k] = v
	}
	args := os.Args[1:]
	var file string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-e" && i+1 < len(args):
			kv := strings.SplitN(args[i+1], "=", 2)
			if len(kv) != 2 {
				usage()
			}
			env[kv[0]] = kv[1]
			i++
		case a == "-h" || a == "--help":
			usage()
		case file == "" && !strings.HasPrefix(a, "-"):
			file = a
		default:
			usage()
		}
	}
	if file == "" {
		usage()
	}
	if _, err := os.Stat(file); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cfg, err := emu.LoadFile(file, env)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := json.Marshal(emu.Summarize(cfg))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: nvidia-config-parse [-e NAME=VALUE]... FILE")
	os.Exit(2)
}
