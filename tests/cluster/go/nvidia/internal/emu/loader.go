// Package emu holds the pure parts of the gpu-plugin-emulator: loading a
// device-plugin config file with NVIDIA's own loader (api/config/v1), choosing
// the config the chart's config-manager would choose, and computing what the
// real device plugin + kubelet + GPU Feature Discovery would put on a node.
//
// This is an EMULATOR for simulated (kwok) nodes that have no GPUs. Nothing
// here talks to a GPU or to NVML.
package emu

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	spec "github.com/NVIDIA/k8s-device-plugin/api/config/v1"
	cli "github.com/urfave/cli/v2"
)

// ChartDefaultEnv is the environment the chart (deployments/helm/nvidia-device-plugin,
// templates/daemonset-device-plugin.yml) gives the plugin container with default
// values: MPS_ROOT is always set (values.mps.root), CONFIG_FILE when a ConfigMap is used.
var ChartDefaultEnv = map[string]string{"MPS_ROOT": "/run/nvidia/mps"}

// PluginFlags returns the CLI flags of cmd/nvidia-device-plugin (v0.19.3 main.go)
// that feed spec.NewConfig: same names, aliases and defaults. EnvVars are kept so
// that EnvArgs can map a pod's container env onto them; the urfave app built by
// Load is run with explicit arguments only, so the emulator's own process
// environment never leaks into a parse.
func PluginFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "mig-strategy", Value: spec.MigStrategyNone, EnvVars: []string{"MIG_STRATEGY"}},
		&cli.BoolFlag{Name: "fail-on-init-error", Value: true, EnvVars: []string{"FAIL_ON_INIT_ERROR"}},
		&cli.StringFlag{Name: "driver-root", Aliases: []string{"nvidia-driver-root"}, Value: "/", EnvVars: []string{"NVIDIA_DRIVER_ROOT"}},
		&cli.StringFlag{Name: "dev-root", Aliases: []string{"nvidia-dev-root"}, EnvVars: []string{"NVIDIA_DEV_ROOT"}},
		&cli.BoolFlag{Name: "pass-device-specs", Value: false, EnvVars: []string{"PASS_DEVICE_SPECS"}},
		&cli.StringSliceFlag{Name: "device-list-strategy", Value: cli.NewStringSlice(spec.DeviceListStrategyEnvVar), EnvVars: []string{"DEVICE_LIST_STRATEGY"}},
		&cli.StringFlag{Name: "device-id-strategy", Value: spec.DeviceIDStrategyUUID, EnvVars: []string{"DEVICE_ID_STRATEGY"}},
		&cli.BoolFlag{Name: "gdrcopy-enabled", EnvVars: []string{"GDRCOPY_ENABLED"}},
		&cli.BoolFlag{Name: "gds-enabled", EnvVars: []string{"GDS_ENABLED"}},
		&cli.BoolFlag{Name: "mofed-enabled", EnvVars: []string{"MOFED_ENABLED"}},
		&cli.StringFlag{Name: "cdi-annotation-prefix", Value: spec.DefaultCDIAnnotationPrefix, EnvVars: []string{"CDI_ANNOTATION_PREFIX"}},
		&cli.StringFlag{Name: "nvidia-cdi-hook-path", Aliases: []string{"nvidia-ctk-path"}, Value: spec.DefaultNvidiaCTKPath, EnvVars: []string{"NVIDIA_CDI_HOOK_PATH", "NVIDIA_CTK_PATH"}},
		&cli.StringFlag{Name: "driver-root-ctr-path", Aliases: []string{"container-driver-root"}, Value: spec.DefaultContainerDriverRoot, EnvVars: []string{"DRIVER_ROOT_CTR_PATH", "CONTAINER_DRIVER_ROOT"}},
		&cli.StringFlag{Name: "mps-root", EnvVars: []string{"MPS_ROOT"}},
		&cli.StringFlag{Name: "device-discovery-strategy", Value: "auto", EnvVars: []string{"DEVICE_DISCOVERY_STRATEGY"}},
		&cli.IntSliceFlag{Name: "imex-channel-ids", EnvVars: []string{"IMEX_CHANNEL_IDS"}},
		&cli.BoolFlag{Name: "imex-required", EnvVars: []string{"IMEX_REQUIRED"}},
		&cli.StringFlag{Name: "kubelet-socket", EnvVars: []string{"KUBELET_SOCKET"}},
		&cli.StringFlag{Name: "config-file", EnvVars: []string{"CONFIG_FILE"}},
		&cli.StringSliceFlag{Name: "cdi-feature-flags", EnvVars: []string{"CDI_FEATURE_FLAGS"}},
	}
}

// envArgs turns container env (NAME -> value) into --flag=value arguments for
// the flags above, in a stable order. CONFIG_FILE is left out: Load passes the
// file itself.
func envArgs(flags []cli.Flag, env map[string]string) []string {
	var args []string
	for _, f := range flags {
		names := f.Names()
		var envs []string
		switch ff := f.(type) {
		case *cli.StringFlag:
			envs = ff.EnvVars
		case *cli.BoolFlag:
			envs = ff.EnvVars
		case *cli.StringSliceFlag:
			envs = ff.EnvVars
		case *cli.IntSliceFlag:
			envs = ff.EnvVars
		}
		for _, e := range envs {
			v, ok := env[e]
			if !ok || e == "CONFIG_FILE" {
				continue
			}
			switch f.(type) {
			case *cli.StringSliceFlag, *cli.IntSliceFlag:
				// urfave reads slice env vars comma-separated; pass each item.
				for _, item := range strings.Split(v, ",") {
					args = append(args, "--"+names[0]+"="+strings.TrimSpace(item))
				}
			default:
				args = append(args, "--"+names[0]+"="+v)
			}
			break
		}
	}
	return args
}

// withoutEnv returns the flags with their EnvVars cleared so that urfave never
// reads the current process environment.
func withoutEnv(flags []cli.Flag) []cli.Flag {
	for _, f := range flags {
		switch ff := f.(type) {
		case *cli.StringFlag:
			ff.EnvVars = nil
		case *cli.BoolFlag:
			ff.EnvVars = nil
		case *cli.StringSliceFlag:
			ff.EnvVars = nil
		case *cli.IntSliceFlag:
			ff.EnvVars = nil
		}
	}
	return flags
}

// LoadFile loads configFile ("" = no config file, flags only) the way
// nvidia-device-plugin's startPlugins does, up to the point where it needs
// NVML: spec.NewConfig (loadConfig), spec.DisableResourceNamingInConfig, then
// the NVML-free checks of validateFlags. env is the plugin container's env.
// Errors carry the plugin's own wording ("unable to load config: ...").
func LoadFile(configFile string, env map[string]string) (*spec.Config, error) {
	flags := PluginFlags()
	args := append([]string{"nvidia-device-plugin"}, envArgs(flags, env)...)
	if configFile != "" {
		args = append(args, "--config-file="+configFile)
	}
	flags = withoutEnv(flags)

	var config *spec.Config
	var loadErr error
	app := cli.NewApp()
	app.Name = "nvidia-device-plugin"
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	app.HideHelp, app.HideVersion = true, true
	app.Flags = flags
	app.Action = func(c *cli.Context) error {
		// loadConfig in cmd/nvidia-device-plugin/main.go
		cfg, err := spec.NewConfig(c, flags)
		if err != nil {
			loadErr = fmt.Errorf("unable to load config: %v", fmt.Errorf("unable to finalize config: %v", err))
			return nil
		}
		cfg.Flags.GFD = nil
		spec.DisableResourceNamingInConfig(cfg)
		if err := validateFlags(cfg); err != nil {
			loadErr = fmt.Errorf("unable to validate flags: %v", err)
			return nil
		}
		config = cfg
		return nil
	}
	if err := app.Run(args); err != nil {
		return nil, fmt.Errorf("invalid plugin flags %v: %v", args[1:], err)
	}
	return config, loadErr
}

// LoadBytes is LoadFile for config content held in memory (a ConfigMap key).
func LoadBytes(data []byte, env map[string]string) (*spec.Config, error) {
	f, err := os.CreateTemp("", "nvidia-plugin-config-*.yaml")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return LoadFile(f.Name(), env)
}

// validateFlags mirrors validateFlags in cmd/nvidia-device-plugin/main.go
// (v0.19.3) minus the check that needs NVML (CDI strategies need NVML: a real
// GPU node has it).
func validateFlags(config *spec.Config) error {
	if _, err := spec.NewDeviceListStrategies(*config.Flags.Plugin.DeviceListStrategy); err != nil {
		return fmt.Errorf("invalid --device-list-strategy option: %v", err)
	}
	if *config.Flags.Plugin.DeviceIDStrategy != spec.DeviceIDStrategyUUID && *config.Flags.Plugin.DeviceIDStrategy != spec.DeviceIDStrategyIndex {
		return fmt.Errorf("invalid --device-id-strategy option: %v", *config.Flags.Plugin.DeviceIDStrategy)
	}
	if config.Sharing.SharingStrategy() == spec.SharingStrategyMPS {
		if *config.Flags.MigStrategy == spec.MigStrategyMixed {
			return fmt.Errorf("using --mig-strategy=mixed is not supported with MPS")
		}
		if config.Flags.MpsRoot == nil || *config.Flags.MpsRoot == "" {
			return fmt.Errorf("using MPS requires --mps-root to be specified")
		}
	}
	switch *config.Flags.DeviceDiscoveryStrategy {
	case "auto", "nvml", "tegra":
	default:
		return fmt.Errorf("invalid --device-discovery-strategy option %v", *config.Flags.DeviceDiscoveryStrategy)
	}
	switch *config.Flags.MigStrategy {
	case spec.MigStrategyNone, spec.MigStrategySingle, spec.MigStrategyMixed:
	default:
		return fmt.Errorf("unknown MIG strategy: %v", *config.Flags.MigStrategy)
	}
	if err := spec.AssertChannelIDsValid(config.Imex.ChannelIDs); err != nil {
		return fmt.Errorf("invalid IMEX channel IDs: %w", err)
	}
	return nil
}

// GPUResource is the resource name the plugin registers for full GPUs
// (rm.AddDefaultResourcesToConfig adds pattern "*" -> "gpu").
const GPUResource = "nvidia.com/gpu"

// ResourceSummary is one replicated resource of the active sharing strategy.
// MatchesDevice says whether the name is one the plugin gives to a device of a
// node whose GPUs have MIG off (DeviceResourceNames): an entry that matches no
// device is skipped by the plugin (rm.updateDeviceMapWithReplicas), so its GPUs
// stay unshared under their own name.
type ResourceSummary struct {
	Name          string `json:"name"`
	Replicas      int    `json:"replicas"`
	Renamed       string `json:"renamed"`
	MatchesDevice bool   `json:"matchesDevice"`
}

// AdvertisedSummary is what the plugin registers for the full GPUs of a node
// whose GPUs have MIG off: the resource name, the replicas per GPU and the
// sharing strategy GFD labels.
type AdvertisedSummary struct {
	Resource        string `json:"resource"`
	Replicas        int    `json:"replicas"`
	SharingStrategy string `json:"sharingStrategy"`
}

// DeviceResourceNames are the resource names the plugin gives the devices of a
// node whose GPUs have MIG off, built with NVIDIA's own spec.Resources the way
// rm.AddDefaultResourcesToConfig (internal/rm/rm.go) builds them after
// DisableResourceNamingInConfig cleared the user's: pattern "*" -> "gpu" for
// full GPUs; migStrategy single names MIG devices "gpu" too; mixed adds
// mig-<profile> names only for the MIG profiles of MIG-enabled GPUs, which
// such a node does not have.
func DeviceResourceNames(cfg *spec.Config) map[string]bool {
	var res spec.Resources
	_ = res.AddGPUResource("*", "gpu")
	if cfg.Flags.MigStrategy != nil && *cfg.Flags.MigStrategy == spec.MigStrategySingle {
		_ = res.AddMIGResource("*", "gpu")
	}
	names := map[string]bool{}
	for _, r := range res.GPUs {
		names[string(r.Name)] = true
	}
	return names
}

// Summary is the nvidia-config-parse output contract (docs/DESIGN.md).
type Summary struct {
	Config          *spec.Config      `json:"config"`
	SharingStrategy string            `json:"sharingStrategy"`
	Replicas        int               `json:"replicas"`
	Resources       []ResourceSummary `json:"resources"`
	// FailRequestsGreaterThanOne is what the plugin enforces at Allocate time
	// (rm.ValidateRequest): the config value for time-slicing, always for MPS.
	FailRequestsGreaterThanOne bool `json:"failRequestsGreaterThanOne"`
	// Advertised is what a node whose GPUs have MIG off gets from this config.
	Advertised AdvertisedSummary `json:"advertised"`
}

// Summarize reduces a loaded config to what the emulator needs.
func Summarize(cfg *spec.Config) Summary {
	s := Summary{Config: cfg, SharingStrategy: string(spec.SharingStrategyNone), Replicas: 1, Resources: []ResourceSummary{},
		Advertised: AdvertisedSummary{Resource: GPUResource, Replicas: 1, SharingStrategy: string(spec.SharingStrategyNone)}}
	if cfg == nil {
		return s
	}
	strategy := cfg.Sharing.SharingStrategy()
	s.SharingStrategy = string(strategy)
	if strategy == spec.SharingStrategyNone {
		return s
	}
	devices := DeviceResourceNames(cfg)
	rrs := cfg.Sharing.ReplicatedResources()
	for _, r := range rrs.Resources {
		s.Resources = append(s.Resources, ResourceSummary{Name: string(r.Name), Replicas: r.Replicas, Renamed: string(r.Rename),
			MatchesDevice: devices[string(r.Name)]})
	}
	if len(s.Resources) > 0 {
		s.Replicas = s.Resources[0].Replicas
	}
	if r := replicated(s); r != nil {
		s.Advertised = AdvertisedSummary{Resource: r.Name, Replicas: r.Replicas, SharingStrategy: string(strategy)}
		if r.Renamed != "" {
			s.Advertised.Resource = r.Renamed
		}
	}
	s.FailRequestsGreaterThanOne = strategy == spec.SharingStrategyMPS ||
		(strategy == spec.SharingStrategyTimeSlicing && rrs.FailRequestsGreaterThanOne)
	return s
}

// SortedKeys is a small helper for stable logs.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
