package emu

import (
	"fmt"
	"strconv"
	"strings"

	spec "github.com/NVIDIA/k8s-device-plugin/api/config/v1"
)

// Keys the emulator reads and writes.
const (
	EmulatorName            = "gpu-plugin-emulator"
	AnnotationFakeNode      = "kwok.x-k8s.io/node" // value "fake" on kwok nodes
	AnnotationPhysicalGPUs  = "gpu-slicing.eks/physical-gpus"
	AnnotationEmulatedBy    = "gpu-slicing.eks/emulated-by"
	AnnotationEmulatorState = "gpu-slicing.eks/emulator-state"
	DefaultConfigLabel      = "nvidia.com/device-plugin.config" // config-manager NODE_LABEL default
	LabelMPSCapable         = "nvidia.com/mps.capable"
)

// GFD label keys for full GPUs (internal/lm/resource.go: "nvidia.com/gpu" + "." + suffix).
var (
	LabelGPUCount    = GPUResource + ".count"
	LabelGPUReplicas = GPUResource + ".replicas"
	LabelGPUSharing  = GPUResource + ".sharing-strategy"
	LabelGPUProduct  = GPUResource + ".product"
	LabelGPUMemory   = GPUResource + ".memory"
	// GFDLabels are all labels the emulator owns; removed when the plugin goes away.
	GFDLabels = []string{LabelGPUCount, LabelGPUReplicas, LabelGPUSharing, LabelGPUProduct, LabelGPUMemory, LabelMPSCapable}
)

// Config-manager fallback strategies (cmd/config-manager/main.go).
const (
	FallbackNamed       = "named"
	FallbackSingle      = "single"
	FallbackEmpty       = "empty"
	NamedConfigFallback = "default"
)

// SelectConfig mirrors updateConfigName in NVIDIA's config-manager: the config
// named by the node label if set, else DEFAULT_CONFIG, else the fallback
// strategies in order. "" with a nil error means the empty config (/dev/null).
// An error is what makes the config-manager (and so the plugin pod) fail.
func SelectConfig(labelValue, defaultConfig string, fallbacks, available []string) (string, error) {
	files := map[string]bool{}
	for _, f := range available {
		files[f] = true
	}
	if len(files) == 0 {
		return "", fmt.Errorf("error getting list of configuration files: no configuration files available")
	}
	if labelValue != "" {
		if !files[labelValue] {
			return "", fmt.Errorf("specified config %v does not exist", labelValue)
		}
		return labelValue, nil
	}
	if defaultConfig != "" {
		if !files[defaultConfig] {
			// Upstream prints the (empty) label value here, not the default name.
			return "", fmt.Errorf("specified config %v does not exist", labelValue)
		}
		return defaultConfig, nil
	}
	for _, fb := range fallbacks {
		switch fb {
		case FallbackNamed:
			if files[NamedConfigFallback] {
				return NamedConfigFallback, nil
			}
		case FallbackSingle:
			if len(files) == 1 {
				return available[0], nil
			}
		case FallbackEmpty:
			return "", nil
		default:
			return "", fmt.Errorf("unknown fallback strategy: %v", fb)
		}
	}
	return "", fmt.Errorf("no config was set, no default was provided, and all fallbacks failed")
}

// productNames maps the EKS label karpenter.k8s.aws/instance-gpu-name to the
// NVML product name GFD would label (sanitised: spaces -> '-').
var productNames = map[string]string{
	"t4":   "Tesla-T4",
	"a10g": "NVIDIA-A10G",
	"l4":   "NVIDIA-L4",
	"a100": "NVIDIA-A100-SXM4-40GB",
	"h100": "NVIDIA-H100-80GB-HBM3",
	"v100": "Tesla-V100-SXM2-16GB",
}

// ProductName maps an instance-gpu-name to a GFD product; unknown names become
// "NVIDIA-<NAME>", empty stays empty.
func ProductName(gpuName string) string {
	n := strings.ToLower(strings.TrimSpace(gpuName))
	if n == "" {
		return ""
	}
	if p, ok := productNames[n]; ok {
		return p
	}
	return "NVIDIA-" + strings.ToUpper(n)
}

// GPUInfo is the simulated hardware of a node.
type GPUInfo struct {
	Count     int
	Product   string
	MemoryMiB int
	Source    string // where Count came from
}

// GPUInfoFromNode reads the simulated hardware. Count precedence:
// annotation gpu-slicing.eks/physical-gpus, then label
// karpenter.k8s.aws/instance-gpu-count, then karpenter.kwok.sh/instance-gpu-count.
// (The controller adds a last resort: the node's nvidia.com/gpu capacity as
// first seen, recorded into the annotation before it changes it.)
func GPUInfoFromNode(labels, annotations map[string]string) GPUInfo {
	info := GPUInfo{}
	for _, src := range []struct {
		m   map[string]string
		key string
	}{
		{annotations, AnnotationPhysicalGPUs},
		{labels, "karpenter.k8s.aws/instance-gpu-count"},
		{labels, "karpenter.kwok.sh/instance-gpu-count"},
	} {
		if v, ok := src.m[src.key]; ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
				info.Count, info.Source = n, src.key
				break
			}
		}
	}
	for _, k := range []string{"karpenter.k8s.aws/instance-gpu-name", "karpenter.kwok.sh/instance-gpu-name"} {
		if v := labels[k]; v != "" {
			info.Product = ProductName(v)
			break
		}
	}
	for _, k := range []string{"karpenter.k8s.aws/instance-gpu-memory", "karpenter.kwok.sh/instance-gpu-memory"} {
		if n, err := strconv.Atoi(labels[k]); err == nil && n > 0 {
			info.MemoryMiB = n
			break
		}
	}
	return info
}

// NodeState is what the plugin (through kubelet) and GFD put on a node.
type NodeState struct {
	// Resources go into both capacity and allocatable.
	Resources map[string]int64
	// Labels to set; labels in GFDLabels but not here are removed.
	Labels map[string]string
	// SharedResource is the resource whose requests are limited to 1 when
	// FailRequests is true ("" when nothing is shared).
	SharedResource string
	FailRequests   bool
}

// replicated finds the sharing entry for full GPUs, as GFD's replicationInfo
// and the plugin's resource manager do (matching on the resource name): an
// entry whose name matches no device is skipped.
func replicated(sum Summary) *ResourceSummary {
	for i := range sum.Resources {
		if sum.Resources[i].MatchesDevice && sum.Resources[i].Replicas > 1 {
			return &sum.Resources[i]
		}
	}
	return nil
}

// Advertised computes what a running plugin + GFD produce for a parsed config
// on gpu (migStrategy is taken as none: the simulated GPUs have no MIG).
//   - no sharing: nvidia.com/gpu = GPUs
//   - sharing: nvidia.com/gpu = GPUs x replicas
//   - renameByDefault: nvidia.com/gpu.shared = GPUs x replicas and
//     nvidia.com/gpu = 0 (the plugin registers only the renamed resource;
//     kubelet reports a resource no plugin serves any more as 0).
func Advertised(sum Summary, gpu GPUInfo) NodeState {
	st := NodeState{Resources: map[string]int64{}, Labels: map[string]string{}}
	replicas := 1
	strategy := string(spec.SharingStrategyNone)
	name := GPUResource
	renamed := false
	if r := replicated(sum); r != nil {
		replicas = r.Replicas
		strategy = sum.SharingStrategy
		if r.Renamed != "" {
			name, renamed = r.Renamed, true
			st.Resources[GPUResource] = 0
		}
		st.SharedResource = name
		st.FailRequests = sum.FailRequestsGreaterThanOne
	}
	st.Resources[name] = int64(gpu.Count * replicas)

	if gpu.Count == 0 {
		return st // GFD's labeler is empty for count 0
	}
	st.Labels[LabelGPUCount] = strconv.Itoa(gpu.Count)
	st.Labels[LabelGPUReplicas] = strconv.Itoa(replicas)
	st.Labels[LabelGPUSharing] = strategy
	if gpu.Product != "" {
		p := gpu.Product
		if replicas > 1 && !renamed {
			p += "-SHARED"
		}
		st.Labels[LabelGPUProduct] = p
	}
	if gpu.MemoryMiB > 0 {
		st.Labels[LabelGPUMemory] = strconv.Itoa(gpu.MemoryMiB)
	}
	st.Labels[LabelMPSCapable] = strconv.FormatBool(strategy == string(spec.SharingStrategyMPS))
	return st
}

// ZeroStale sets to 0 every nvidia.com/ resource the node has that st does not
// advertise: kubelet reports a resource whose plugin no longer registers it as
// 0 (e.g. nvidia.com/gpu.shared after renameByDefault was turned off).
func ZeroStale(st NodeState, currentCapacity []string) NodeState {
	for _, k := range currentCapacity {
		if _, ok := st.Resources[k]; !ok && strings.HasPrefix(k, "nvidia.com/") {
			st.Resources[k] = 0
		}
	}
	return st
}

// Withdrawn is the node once the plugin is gone: every nvidia.com/ extended
// resource it has goes to 0 (kubelet keeps a resource whose plugin stopped at
// 0) and the GFD labels go away.
func Withdrawn(currentCapacity []string) NodeState {
	st := NodeState{Resources: map[string]int64{}, Labels: map[string]string{}}
	for _, k := range currentCapacity {
		if strings.HasPrefix(k, "nvidia.com/") {
			st.Resources[k] = 0
		}
	}
	return st
}

// ContainerRequest is one container's request for an extended resource.
type ContainerRequest struct {
	Container string
	Count     int64
}

// RejectMessage returns the kubelet admission failure for a pod whose
// containers request more than one shared device, or "" when kubelet would
// admit it. Kubelet calls the plugin's Allocate per container; the plugin's
// rm.ValidateRequest refuses > 1 replica; kubelet wraps the gRPC error
// (cm/admission: "Allocate failed due to %v, which is unexpected") and
// rejectPod prefixes "Pod was rejected: ".
func RejectMessage(st NodeState, requests []ContainerRequest) string {
	if !st.FailRequests || st.SharedResource == "" {
		return ""
	}
	for _, r := range requests {
		if r.Count > 1 {
			pluginErr := fmt.Sprintf("invalid allocation request for %q: invalid request: maximum request size for shared resources is 1; found %d", st.SharedResource, r.Count)
			return fmt.Sprintf("Pod was rejected: Allocate failed due to rpc error: code = Unknown desc = %s, which is unexpected", pluginErr)
		}
	}
	return ""
}

// RejectReason is the pod status reason kubelet sets.
const RejectReason = "UnexpectedAdmissionError"
