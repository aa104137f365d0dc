package main

// EMULATION of what NVIDIA's MIG manager leaves on a node: MIG devices per GPU, from the node
// label nvidia.com/mig.config (the label the MIG manager reads; read once, when the node is
// first served), written into the node's nvml.json for the emulated NVML, and the
// /proc/driver/nvidia-caps/mig-minors file NVIDIA's plugin reads the MIG capability device
// minors from.

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gpu-slicing-eks/tests/cluster/go/nvidia-real/internal/nvmlspec"
)

const migConfigLabel = "nvidia.com/mig.config"

// migProfiles are the GPU instance profiles of each MIG-capable model of the fixture, as
// NVIDIA's MIG user guide lists them (profile index, ID, slices, instances, SMs, engines, memory).
var migProfiles = map[string][]nvmlspec.MigProfile{
	"NVIDIA A100-SXM4-40GB": {
		{Name: "1g.5gb", Index: 0, ID: 19, SliceCount: 1, InstanceCount: 7, MultiprocessorCount: 14, CopyEngineCount: 1, MemorySizeMB: 4864},
		{Name: "2g.10gb", Index: 1, ID: 14, SliceCount: 2, InstanceCount: 3, MultiprocessorCount: 28, CopyEngineCount: 2, DecoderCount: 1, MemorySizeMB: 9856},
		{Name: "3g.20gb", Index: 2, ID: 9, SliceCount: 3, InstanceCount: 2, MultiprocessorCount: 42, CopyEngineCount: 3, DecoderCount: 2, MemorySizeMB: 19968},
		{Name: "4g.20gb", Index: 3, ID: 5, SliceCount: 4, InstanceCount: 1, MultiprocessorCount: 56, CopyEngineCount: 4, DecoderCount: 2, MemorySizeMB: 19968},
		{Name: "7g.40gb", Index: 4, ID: 0, SliceCount: 7, InstanceCount: 1, MultiprocessorCount: 98, CopyEngineCount: 7, DecoderCount: 5, JpegCount: 1, OfaCount: 1, MemorySizeMB: 40192},
	},
}

// migLayout is the profiles one GPU gets for a MIG manager config name: all-disabled, all-<profile>
// (as many as fit), or all-balanced (NVIDIA's default config for a 40 GB A100: 2x1g, 1x2g, 1x3g).
func migLayout(product, config string) ([]nvmlspec.MigProfile, error) {
	table, ok := migProfiles[product]
	if !ok {
		return nil, fmt.Errorf("%s=%s: no MIG profiles for %q", migConfigLabel, config, product)
	}
	byName := map[string]nvmlspec.MigProfile{}
	for _, p := range table {
		byName[p.Name] = p
	}
	var names []string
	switch {
	case config == "all-disabled":
		return table, nil
	case config == "all-balanced":
		names = []string{"3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"}
	case strings.HasPrefix(config, "all-"):
		p, ok := byName[strings.TrimPrefix(config, "all-")]
		if !ok {
			return nil, fmt.Errorf("%s=%s: %q has no such profile", migConfigLabel, config, product)
		}
		for i := uint32(0); i < p.InstanceCount; i++ {
			names = append(names, p.Name)
		}
	default:
		return nil, fmt.Errorf("%s=%s: not a config the emulated MIG manager knows (all-disabled, all-balanced, all-<profile>)", migConfigLabel, config)
	}
	var layout []nvmlspec.MigProfile
	for _, n := range names {
		layout = append(layout, byName[n])
	}
	return append(table, layout...), nil // the table, then the devices' profiles
}

// applyMigLayout fills the GPUs' MIG fields (nvml.json) for the node's config and writes the
// node's mig-minors file; it returns whether MIG is on.
func applyMigLayout(nodeDir, node, product, config string, devs []nvmlspec.GPU) (bool, error) {
	if config == "" {
		return false, nil
	}
	all, err := migLayout(product, config)
	if err != nil {
		return false, err
	}
	table, layout := all[:len(migProfiles[product])], all[len(migProfiles[product]):]
	if len(layout) == 0 {
		return false, nil
	}
	var minors strings.Builder
	minors.WriteString("config 1\nmonitor 2\n")
	minor := 3
	for gpu := range devs {
		var migs []nvmlspec.MigDevice
		start := uint32(0)
		for k, p := range layout {
			gi := uint32(k + 1)
			sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/mig/%d", node, gpu, gi)))
			migs = append(migs, nvmlspec.MigDevice{
				UUID: fmt.Sprintf("MIG-%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16]),
				Name: fmt.Sprintf("%s MIG %s", product, p.Name), GIID: gi, ProfileIndex: p.Index, Start: start})
			start += p.SliceCount
		}
		// Every GPU instance and compute instance the driver could create has a capability minor.
		for gi := 0; gi < 15; gi++ {
			fmt.Fprintf(&minors, "gpu%d/gi%d/access %d\n", gpu, gi, minor)
			minor++
			for ci := 0; ci < 8; ci++ {
				fmt.Fprintf(&minors, "gpu%d/gi%d/ci%d/access %d\n", gpu, gi, ci, minor)
				minor++
			}
		}
		devs[gpu].MigEnabled, devs[gpu].MigProfiles, devs[gpu].MigDevices = true, table, migs
	}
	path := filepath.Join(nodeDir, "proc-driver", "nvidia-caps", "mig-minors")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	return true, os.WriteFile(path, []byte(minors.String()), 0o444)
}
