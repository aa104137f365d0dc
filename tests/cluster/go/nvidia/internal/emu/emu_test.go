package emu

import (
	"strings"
	"testing"
)

func load(t *testing.T, yaml string, env map[string]string) (Summary, error) {
	t.Helper()
	if env == nil {
		env = ChartDefaultEnv
	}
	cfg, err := LoadBytes([]byte(yaml), env)
	if err != nil {
		return Summary{}, err
	}
	return Summarize(cfg), nil
}

func TestLoad(t *testing.T) {
	cases := []struct {
		name, yaml  string
		env         map[string]string
		wantErr     string
		strategy    string
		replicas    int
		renamed     string
		failGreater bool
	}{
		{name: "empty file", yaml: "", strategy: "none", replicas: 1},
		{name: "ts4", yaml: "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n", strategy: "time-slicing", replicas: 4},
		{name: "short name gets prefix", yaml: "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: gpu\n      replicas: 2\n", strategy: "time-slicing", replicas: 2},
		{name: "no version defaults to v1", yaml: "sharing:\n  timeSlicing:\n    resources:\n    - name: gpu\n      replicas: 3\n", strategy: "time-slicing", replicas: 3},
		{name: "replicas 1 rejected", yaml: "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: gpu\n      replicas: 1\n", wantErr: "number of replicas must be >= 2"},
		{name: "no replicas", yaml: "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: gpu\n", wantErr: "no replicas specified"},
		{name: "no resources", yaml: "version: v1\nsharing:\n  timeSlicing:\n    resources: []\n", wantErr: "no resources specified"},
		{name: "bad version", yaml: "version: v2\n", wantErr: "unknown version: v2"},
		{name: "bad mig strategy", yaml: "version: v1\nflags:\n  migStrategy: bogus\n", wantErr: "unknown MIG strategy: bogus"},
		{name: "unknown key ignored", yaml: "version: v1\nsharing:\n  timeSlicing:\n    replica: 4\n    resources:\n    - name: gpu\n      replicas: 4\n", strategy: "time-slicing", replicas: 4},
		{name: "mps forces failRequests", yaml: "version: v1\nsharing:\n  mps:\n    resources:\n    - name: gpu\n      replicas: 4\n", strategy: "mps", replicas: 4, failGreater: true},
		{name: "mps without mps root", yaml: "version: v1\nsharing:\n  mps:\n    resources:\n    - name: gpu\n      replicas: 4\n", env: map[string]string{}, wantErr: "using MPS requires --mps-root"},
		{name: "mps with mixed", yaml: "version: v1\nflags:\n  migStrategy: mixed\nsharing:\n  mps:\n    resources:\n    - name: gpu\n      replicas: 4\n", wantErr: "mixed is not supported with MPS"},
		{name: "env overrides file", yaml: "version: v1\nflags:\n  migStrategy: none\n", env: map[string]string{"MIG_STRATEGY": "bogus"}, wantErr: "unknown MIG strategy: bogus"},
		{name: "mps wins over time-slicing", yaml: "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: gpu\n      replicas: 2\n  mps:\n    resources:\n    - name: gpu\n      replicas: 5\n", strategy: "mps", replicas: 5, failGreater: true},
		{name: "renameByDefault", yaml: "version: v1\nsharing:\n  timeSlicing:\n    renameByDefault: true\n    resources:\n    - name: gpu\n      replicas: 4\n", strategy: "time-slicing", replicas: 4, renamed: "nvidia.com/gpu.shared"},
		{name: "custom rename cleared", yaml: "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: gpu\n      rename: foo\n      replicas: 4\n", strategy: "time-slicing", replicas: 4},
		{name: "failRequests time-slicing", yaml: "version: v1\nsharing:\n  timeSlicing:\n    failRequestsGreaterThanOne: true\n    resources:\n    - name: gpu\n      replicas: 4\n", strategy: "time-slicing", replicas: 4, failGreater: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := load(t, c.yaml, c.env)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("want error containing %q, got %v", c.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.SharingStrategy != c.strategy || s.Replicas != c.replicas || s.FailRequestsGreaterThanOne != c.failGreater {
				t.Fatalf("got %s x%d fail>1=%v", s.SharingStrategy, s.Replicas, s.FailRequestsGreaterThanOne)
			}
			if len(s.Resources) > 0 && (s.Resources[0].Name != GPUResource || s.Resources[0].Renamed != c.renamed) {
				t.Fatalf("resources %+v", s.Resources)
			}
		})
	}
}

func TestSelectConfig(t *testing.T) {
	named := []string{FallbackNamed, FallbackSingle}
	cases := []struct {
		name, label, def string
		fallbacks        []string
		available        []string
		want, wantErr    string
	}{
		{"label wins", "ts-4", "ts-2", named, []string{"ts-2", "ts-4"}, "ts-4", ""},
		{"unknown label", "nope", "", named, []string{"ts-4"}, "", "specified config nope does not exist"},
		{"default", "", "ts-2", named, []string{"ts-2", "ts-4"}, "ts-2", ""},
		{"missing default", "", "x", named, []string{"ts-4"}, "", "does not exist"},
		{"named fallback", "", "", named, []string{"default", "ts-4"}, "default", ""},
		{"single fallback", "", "", named, []string{"ts-4"}, "ts-4", ""},
		{"fallbacks fail", "", "", named, []string{"a", "b"}, "", "all fallbacks failed"},
		{"empty fallback", "", "", []string{FallbackEmpty}, []string{"a", "b"}, "", ""},
		{"no files", "ts-4", "", named, nil, "", "no configuration files available"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := SelectConfig(c.label, c.def, c.fallbacks, c.available)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("want error %q, got %q, %v", c.wantErr, got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestAdvertised(t *testing.T) {
	ts := func(r int, ren string, fail bool) Summary {
		return Summary{SharingStrategy: "time-slicing", Replicas: r, FailRequestsGreaterThanOne: fail,
			Resources: []ResourceSummary{{Name: GPUResource, Replicas: r, Renamed: ren, MatchesDevice: true}}}
	}
	t4 := GPUInfo{Count: 1, Product: "Tesla-T4", MemoryMiB: 16384}
	a10g4 := GPUInfo{Count: 4, Product: "NVIDIA-A10G", MemoryMiB: 24576}
	cases := []struct {
		name      string
		sum       Summary
		gpu       GPUInfo
		resources map[string]int64
		labels    map[string]string
		shared    string
		fail      bool
	}{
		{"no sharing", Summarize(nil), t4, map[string]int64{"nvidia.com/gpu": 1},
			map[string]string{LabelGPUCount: "1", LabelGPUReplicas: "1", LabelGPUSharing: "none", LabelGPUProduct: "Tesla-T4", LabelGPUMemory: "16384", LabelMPSCapable: "false"}, "", false},
		{"ts4 on 1 GPU", ts(4, "", false), t4, map[string]int64{"nvidia.com/gpu": 4},
			map[string]string{LabelGPUCount: "1", LabelGPUReplicas: "4", LabelGPUSharing: "time-slicing", LabelGPUProduct: "Tesla-T4-SHARED", LabelGPUMemory: "16384", LabelMPSCapable: "false"}, "nvidia.com/gpu", false},
		{"ts4 on 4 GPUs", ts(4, "", true), a10g4, map[string]int64{"nvidia.com/gpu": 16},
			map[string]string{LabelGPUCount: "4", LabelGPUReplicas: "4", LabelGPUSharing: "time-slicing", LabelGPUProduct: "NVIDIA-A10G-SHARED", LabelGPUMemory: "24576", LabelMPSCapable: "false"}, "nvidia.com/gpu", true},
		{"renamed", ts(8, "nvidia.com/gpu.shared", false), a10g4, map[string]int64{"nvidia.com/gpu": 0, "nvidia.com/gpu.shared": 32},
			map[string]string{LabelGPUCount: "4", LabelGPUReplicas: "8", LabelGPUSharing: "time-slicing", LabelGPUProduct: "NVIDIA-A10G", LabelGPUMemory: "24576", LabelMPSCapable: "false"}, "nvidia.com/gpu.shared", false},
		{"mps", Summary{SharingStrategy: "mps", Replicas: 2, FailRequestsGreaterThanOne: true, Resources: []ResourceSummary{{Name: GPUResource, Replicas: 2, MatchesDevice: true}}}, t4,
			map[string]int64{"nvidia.com/gpu": 2},
			map[string]string{LabelGPUCount: "1", LabelGPUReplicas: "2", LabelGPUSharing: "mps", LabelGPUProduct: "Tesla-T4-SHARED", LabelGPUMemory: "16384", LabelMPSCapable: "true"}, "nvidia.com/gpu", true},
		{"sharing of another resource only", Summary{SharingStrategy: "time-slicing", Replicas: 4, Resources: []ResourceSummary{{Name: "nvidia.com/mig-1g.5gb", Replicas: 4}}}, t4,
			map[string]int64{"nvidia.com/gpu": 1},
			map[string]string{LabelGPUCount: "1", LabelGPUReplicas: "1", LabelGPUSharing: "none", LabelGPUProduct: "Tesla-T4", LabelGPUMemory: "16384", LabelMPSCapable: "false"}, "", false},
		{"no product or memory", ts(2, "", false), GPUInfo{Count: 2}, map[string]int64{"nvidia.com/gpu": 4},
			map[string]string{LabelGPUCount: "2", LabelGPUReplicas: "2", LabelGPUSharing: "time-slicing", LabelMPSCapable: "false"}, "nvidia.com/gpu", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := Advertised(c.sum, c.gpu)
			if !eq(st.Resources, c.resources) || !eq(st.Labels, c.labels) || st.SharedResource != c.shared || st.FailRequests != c.fail {
				t.Fatalf("got %+v", st)
			}
		})
	}
}

// What NVIDIA's loader and resource naming make of a config, on a node with one
// T4 (MIG off): a sharing entry whose name matches no device (a custom name, or
// a MIG profile name without MIG hardware) is skipped, so the node advertises
// plain, unshared nvidia.com/gpu and GFD labels no sharing.
func TestAdvertisedFromNVIDIAsLoader(t *testing.T) {
	t4 := GPUInfo{Count: 1, Product: "Tesla-T4"}
	doc := func(mig, key, name string) string {
		return "version: v1\nflags:\n  migStrategy: " + mig + "\nsharing:\n  " + key + ":\n    resources:\n    - name: " +
			name + "\n      replicas: 4\n"
	}
	cases := []struct {
		name, yaml string
		matches    bool
		resources  map[string]int64
		strategy   string
	}{
		{"plain gpu", doc("none", "timeSlicing", "nvidia.com/gpu"), true, map[string]int64{"nvidia.com/gpu": 4}, "time-slicing"},
		{"short gpu", doc("none", "timeSlicing", "gpu"), true, map[string]int64{"nvidia.com/gpu": 4}, "time-slicing"},
		{"custom name ignored", doc("none", "timeSlicing", "nvidia.com/gpu-ts"), false, map[string]int64{"nvidia.com/gpu": 1}, "none"},
		{"custom short name ignored", doc("none", "timeSlicing", "gpu-ts"), false, map[string]int64{"nvidia.com/gpu": 1}, "none"},
		{"custom name with mps ignored", doc("none", "mps", "nvidia.com/t4.slice"), false, map[string]int64{"nvidia.com/gpu": 1}, "none"},
		{"mig single names MIG devices gpu", doc("single", "timeSlicing", "nvidia.com/gpu"), true, map[string]int64{"nvidia.com/gpu": 4}, "time-slicing"},
		{"mig profile name without MIG hardware", doc("mixed", "timeSlicing", "nvidia.com/mig-1g.5gb"), false, map[string]int64{"nvidia.com/gpu": 1}, "none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sum, err := load(t, c.yaml, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(sum.Resources) != 1 || sum.Resources[0].MatchesDevice != c.matches {
				t.Fatalf("resources %+v", sum.Resources)
			}
			st := Advertised(sum, t4)
			if !eq(st.Resources, c.resources) || st.Labels[LabelGPUSharing] != c.strategy {
				t.Fatalf("got %+v", st)
			}
			if sum.Advertised.SharingStrategy != c.strategy || sum.Advertised.Resource != GPUResource ||
				int64(sum.Advertised.Replicas) != c.resources[GPUResource] {
				t.Fatalf("summary advertised %+v", sum.Advertised)
			}
			if st.Labels[LabelMPSCapable] != "false" {
				t.Fatalf("mps.capable %q", st.Labels[LabelMPSCapable])
			}
		})
	}
}

func eq[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestWithdrawn(t *testing.T) {
	st := Withdrawn([]string{"cpu", "memory", "nvidia.com/gpu", "nvidia.com/gpu.shared", "pods"})
	if !eq(st.Resources, map[string]int64{"nvidia.com/gpu": 0, "nvidia.com/gpu.shared": 0}) || len(st.Labels) != 0 {
		t.Fatalf("got %+v", st)
	}
}

func TestZeroStale(t *testing.T) {
	st := ZeroStale(NodeState{Resources: map[string]int64{"nvidia.com/gpu": 2}}, []string{"cpu", "nvidia.com/gpu", "nvidia.com/gpu.shared"})
	if !eq(st.Resources, map[string]int64{"nvidia.com/gpu": 2, "nvidia.com/gpu.shared": 0}) {
		t.Fatalf("got %+v", st.Resources)
	}
}

func TestRejectMessage(t *testing.T) {
	shared := NodeState{SharedResource: "nvidia.com/gpu", FailRequests: true}
	cases := []struct {
		name string
		st   NodeState
		reqs []ContainerRequest
		want string
	}{
		{"one slice ok", shared, []ContainerRequest{{"a", 1}, {"b", 1}}, ""},
		{"two slices fail", shared, []ContainerRequest{{"a", 2}}, `Pod was rejected: Allocate failed due to rpc error: code = Unknown desc = invalid allocation request for "nvidia.com/gpu": invalid request: maximum request size for shared resources is 1; found 2, which is unexpected`},
		{"no failRequests", NodeState{SharedResource: "nvidia.com/gpu"}, []ContainerRequest{{"a", 3}}, ""},
		{"not shared", NodeState{}, []ContainerRequest{{"a", 3}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := RejectMessage(c.st, c.reqs); got != c.want {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestGPUInfoFromNode(t *testing.T) {
	labels := map[string]string{
		"karpenter.k8s.aws/instance-gpu-count":  "4",
		"karpenter.k8s.aws/instance-gpu-name":   "a10g",
		"karpenter.k8s.aws/instance-gpu-memory": "24576",
		"karpenter.kwok.sh/instance-gpu-count":  "2",
	}
	g := GPUInfoFromNode(labels, nil)
	if g.Count != 4 || g.Product != "NVIDIA-A10G" || g.MemoryMiB != 24576 || g.Source != "karpenter.k8s.aws/instance-gpu-count" {
		t.Fatalf("got %+v", g)
	}
	g = GPUInfoFromNode(labels, map[string]string{AnnotationPhysicalGPUs: "8"})
	if g.Count != 8 || g.Source != AnnotationPhysicalGPUs {
		t.Fatalf("annotation must win: %+v", g)
	}
	g = GPUInfoFromNode(map[string]string{"karpenter.kwok.sh/instance-gpu-count": "2"}, nil)
	if g.Count != 2 || g.Product != "" {
		t.Fatalf("kwok label: %+v", g)
	}
	if g := GPUInfoFromNode(nil, nil); g.Source != "" {
		t.Fatalf("no source expected: %+v", g)
	}
	for in, want := range map[string]string{"t4": "Tesla-T4", "L4": "NVIDIA-L4", "h100": "NVIDIA-H100-80GB-HBM3", "b200": "NVIDIA-B200", "": ""} {
		if got := ProductName(in); got != want {
			t.Errorf("ProductName(%q) = %q, want %q", in, got, want)
		}
	}
}
