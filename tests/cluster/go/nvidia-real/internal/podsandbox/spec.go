// Package podsandbox is the contract between kubelet-device-emulator and pod-sandbox: the spec
// file the emulator writes for one chart pod and the sandbox runs.
package podsandbox

// BindMount is a hostPath of the node mounted where NVIDIA's binaries expect it.
type BindMount struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// Container is one container of the pod as a process.
type Container struct {
	Name  string   `json:"name"`
	Path  string   `json:"path"`
	Argv0 string   `json:"argv0"` // the pod's command (config-manager finds the plugin by argv[0])
	Args  []string `json:"args"`
	Env   []string `json:"env"`
	Log   string   `json:"log"`
}

// Spec is one pod: its binds, init containers (run in order, each to success) and containers.
type Spec struct {
	Pod            string      `json:"pod"`
	Binds          []BindMount `json:"binds"`
	InitContainers []Container `json:"initContainers"`
	Containers     []Container `json:"containers"`
}
