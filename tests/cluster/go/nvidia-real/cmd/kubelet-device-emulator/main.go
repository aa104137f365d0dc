// Command kubelet-device-emulator is an EMULATION of the parts of kubelet (and of NFD's
// labelling) that NVIDIA's device plugin and GPU feature discovery talk to, for the simulated
// (kwok) GPU nodes of the local cluster. NVIDIA's binaries themselves run unmodified:
//
//   - a chart pod (container command nvidia-device-plugin or gpu-feature-discovery, with its
//     config-manager init container and sidecar) bound to a simulated node gets its containers
//     run as processes in a private mount+PID namespace (pod-sandbox, next to this binary) and
//     loses them when the pod goes; env and volumes come from the pod spec (see startSandbox);
//   - the plugin finds libnvidia-ml.so.1 = our emulated NVML (go/nvidia-real/nvml) with the
//     node's GPUs from fixtures/gpu_instance_types.yaml;
//   - kubelet's device manager (devicemanager.go): Registration, ListAndWatch -> node
//     capacity/allocatable, GetPreferredAllocation + Allocate at pod admission, the answer
//     recorded in the pod annotation gpu-slicing.eks/allocation, refusals failing the pod
//     with reason UnexpectedAdmissionError;
//   - NFD master: GFD's NodeFeature objects (and features.d files) become node labels.
//
// Usage: kubelet-device-emulator --kubeconfig F --workdir D --bin B --nvml-lib L --fixture Y
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/yaml"

	"gpu-slicing-eks/tests/cluster/go/nvidia-real/internal/nvmlspec"
	"gpu-slicing-eks/tests/cluster/go/nvidia-real/internal/podsandbox"
)

const (
	allocationAnnotation = "gpu-slicing.eks/allocation"
	nfdLabelsAnnotation  = "gpu-slicing.eks/nfd-labels"
	runByAnnotation      = "gpu-slicing.eks/emulated-by"
)

var metav1PatchOptions = metav1.PatchOptions{}

// The chart's container commands this emulator runs; any other chart pod (e.g. the MPS
// control daemon, which needs CUDA) is left to kwok.
var runnable = map[string]bool{"nvidia-device-plugin": true, "gpu-feature-discovery": true, "config-manager": true}

type gpuModel struct {
	Product           string `json:"product"`
	PCIDeviceID       uint32 `json:"pci_device_id"`
	ComputeCapability string `json:"compute_capability"`
	Architecture      uint32 `json:"architecture"`
	MigCapable        bool   `json:"mig_capable"`
}

type fixture struct {
	Driver struct {
		Version     string `json:"version"`
		CudaVersion int32  `json:"cuda_version"`
	} `json:"nvidia_driver"`
	Models        map[string]gpuModel `json:"gpu_models"`
	InstanceTypes map[string]struct {
		GPU *struct {
			Name      string `json:"name"`
			Count     int    `json:"count"`
			MemoryMiB uint64 `json:"memory_mib"`
		} `json:"gpu"`
	} `json:"instance_types"`
}

type nodeState struct {
	name      string
	dir       string
	dm        *deviceManager
	nfdLabels map[string]string
	mig       bool // MIG devices from nvidia.com/mig.config (mig.go)
}

type sandbox struct {
	pod   types.UID
	name  string
	node  string
	dir   string
	cmd   *exec.Cmd
	done  chan struct{}
	start time.Time
}

type controller struct {
	kc         kubernetes.Interface
	dyn        dynamic.Interface
	kubeconfig string
	workdir    string
	binDir     string
	nvmlLib    string
	namespace  string
	grace      time.Duration
	fx         fixture
	sandboxBin string // pod-sandbox, next to this binary

	pods  listersv1.PodLister
	nodes listersv1.NodeLister
	cms   listersv1.ConfigMapLister

	mu        sync.Mutex // held by sync()
	stateMu   sync.RWMutex
	nodeState map[string]*nodeState // written under mu and stateMu, read under either
	sandboxes map[types.UID]*sandbox
	trigger   chan struct{}
	// Workload pods to admit, by namespace/name: kubelet admits a pod as soon as its watch
	// sees it bound, not after its other periodic work.
	admitQ workqueue.TypedInterface[string]
}

func main() {
	c := &controller{nodeState: map[string]*nodeState{}, sandboxes: map[types.UID]*sandbox{}, trigger: make(chan struct{}, 1),
		admitQ: newAdmitQueue()}
	fixturePath := ""
	flag.StringVar(&c.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "cluster to act on")
	flag.StringVar(&c.workdir, "workdir", "", "per-node directories go here (required)")
	flag.StringVar(&c.binDir, "bin", "", "directory with NVIDIA's nvidia-device-plugin, gpu-feature-discovery, config-manager (required)")
	flag.StringVar(&c.nvmlLib, "nvml-lib", "", "directory with the emulated libnvidia-ml.so.1 (required)")
	flag.StringVar(&fixturePath, "fixture", "", "fixtures/gpu_instance_types.yaml (required)")
	flag.StringVar(&c.namespace, "namespace", "", "namespace of the chart's pods (default: all)")
	flag.DurationVar(&c.grace, "endpoint-grace", 5*time.Minute, "kubelet's endpointStopGracePeriod: a resource whose plugin left goes to 0 after it")
	flag.Parse()
	if c.workdir == "" || c.binDir == "" || c.nvmlLib == "" || fixturePath == "" {
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(log.LstdFlags | log.Lmicroseconds | log.LUTC)
	data, err := os.ReadFile(fixturePath)
	if err == nil {
		err = yaml.Unmarshal(data, &c.fx)
	}
	if err != nil {
		log.Fatalf("fixture %s: %v", fixturePath, err)
	}
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	c.sandboxBin = filepath.Join(filepath.Dir(self), "pod-sandbox")
	if _, err := os.Stat(c.sandboxBin); err != nil {
		log.Fatalf("pod-sandbox: %v (build.sh nvidia-real builds it next to kubelet-device-emulator)", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		log.Fatal(err)
	}
	// kubelet's kubeAPIQPS/kubeAPIBurst defaults. This one process is the kubelet of every
	// simulated GPU node: client-go's default (5 QPS) spaced its writes 0.2 s apart, so with
	// 20 nodes a refusal landed seconds after kwok had marked the pod Running.
	cfg.QPS, cfg.Burst = 50, 100
	c.kc = kubernetes.NewForConfigOrDie(cfg)
	c.dyn = dynamic.NewForConfigOrDie(cfg)

	ctx, cancel := context.WithCancel(context.Background())
	if err := c.start(ctx); err != nil {
		log.Fatal(err)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(time.Second)
	log.Printf("kubelet-device-emulator: running (workdir %s)", c.workdir)
	for {
		select {
		case <-sigs:
			cancel()
			c.admitQ.ShutDown()
			c.shutdown()
			return
		case <-c.trigger:
		case <-tick.C:
		}
		c.sync()
	}
}

// start runs the informers (every event kicks sync(); workload pods also go to the
// admission workers) and waits for their caches.
func (c *controller) start(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(c.kc, 0)
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.kick() },
		UpdateFunc: func(any, any) { c.kick() },
		DeleteFunc: func(any) { c.kick() },
	}
	for _, inf := range []cache.SharedIndexInformer{factory.Core().V1().Pods().Informer(),
		factory.Core().V1().Nodes().Informer(), factory.Core().V1().ConfigMaps().Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
	}
	if _, err := factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.enqueueAdmission(o) },
		UpdateFunc: func(_, o any) { c.enqueueAdmission(o) },
	}); err != nil {
		return err
	}
	c.pods = factory.Core().V1().Pods().Lister()
	c.nodes = factory.Core().V1().Nodes().Lister()
	c.cms = factory.Core().V1().ConfigMaps().Lister()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	for i := 0; i < 4; i++ {
		go c.admissionWorker()
	}
	return nil
}

func (c *controller) kick() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

func newAdmitQueue() workqueue.TypedInterface[string] { return workqueue.NewTyped[string]() }

// needsAdmission says whether a pod is a workload pod bound to a node that kubelet has not yet
// decided (or must decide again: a refused pod that is not Failed yet).
func needsAdmission(p *corev1.Pod) bool {
	return p.Spec.NodeName != "" && p.DeletionTimestamp == nil && !chartPod(p) &&
		p.Status.Phase != corev1.PodFailed && p.Status.Phase != corev1.PodSucceeded &&
		p.Annotations[allocationAnnotation] == ""
}

func (c *controller) enqueueAdmission(o any) {
	if p, ok := o.(*corev1.Pod); ok && needsAdmission(p) {
		c.admitQ.Add(p.Namespace + "/" + p.Name)
	}
}

// admissionWorker admits pods as their binding arrives, apart from sync()'s periodic per-node
// work (sandboxes, status, NFD labels), as kubelet's pod workers are apart from its status loop.
// A pod whose resource has no plugin registered yet is left to sync(), which retries each second.
func (c *controller) admissionWorker() {
	for {
		key, quit := c.admitQ.Get()
		if quit {
			return
		}
		ns, name, _ := strings.Cut(key, "/")
		if p, err := c.pods.Pods(ns).Get(name); err == nil && needsAdmission(p) {
			c.stateMu.RLock()
			st := c.nodeState[p.Spec.NodeName]
			c.stateMu.RUnlock()
			if st != nil {
				c.admitPod(st, p)
			}
		}
		c.admitQ.Done(key)
	}
}

func (c *controller) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range c.sandboxes {
		wg.Add(1)
		go func(s *sandbox) { defer wg.Done(); c.stopSandbox(s) }(s)
	}
	wg.Wait()
	for _, n := range c.nodeState {
		n.dm.stop()
	}
	log.Printf("kubelet-device-emulator: stopped")
}

// gpuNode says whether the emulator serves the node: a kwok fake with a GPU instance type.
func (c *controller) gpuNode(n *corev1.Node) bool {
	if n.Annotations["kwok.x-k8s.io/node"] != "fake" || n.DeletionTimestamp != nil {
		return false
	}
	it, ok := c.fx.InstanceTypes[n.Labels["node.kubernetes.io/instance-type"]]
	return ok && it.GPU != nil && it.GPU.Count > 0
}

func chartPod(p *corev1.Pod) bool {
	for _, ct := range p.Spec.Containers {
		if len(ct.Command) > 0 && (ct.Command[0] == "nvidia-device-plugin" || ct.Command[0] == "gpu-feature-discovery") {
			return true
		}
	}
	return false
}

func (c *controller) sync() {
	c.mu.Lock()
	defer c.mu.Unlock()
	nodes, _ := c.nodes.List(labels.Everything())
	served := map[string]*corev1.Node{}
	for _, n := range nodes {
		if c.gpuNode(n) {
			served[n.Name] = n
		}
	}
	for name, st := range c.nodeState {
		if served[name] == nil {
			log.Printf("node %s: gone, stopping its device manager", name)
			st.dm.stop()
			c.stateMu.Lock()
			delete(c.nodeState, name)
			c.stateMu.Unlock()
		}
	}
	for name, n := range served {
		if c.nodeState[name] == nil {
			st, err := c.newNode(n)
			if err != nil {
				log.Printf("node %s: %v", name, err)
				delete(served, name)
				continue
			}
			c.stateMu.Lock()
			c.nodeState[name] = st
			c.stateMu.Unlock()
		}
	}

	listed := time.Now()
	pods, _ := c.pods.List(labels.Everything())
	want := map[types.UID]*corev1.Pod{}
	active := map[string]map[types.UID]bool{}
	for _, p := range pods {
		if served[p.Spec.NodeName] == nil {
			continue
		}
		terminal := p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
		if chartPod(p) {
			if (c.namespace == "" || p.Namespace == c.namespace) && !terminal {
				want[p.UID] = p
			}
			continue
		}
		if active[p.Spec.NodeName] == nil {
			active[p.Spec.NodeName] = map[types.UID]bool{}
		}
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded {
			active[p.Spec.NodeName][p.UID] = true
		}
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded {
			c.admitPod(c.nodeState[p.Spec.NodeName], p)
		}
	}
	for uid, s := range c.sandboxes {
		if want[uid] == nil || c.nodeState[s.node] == nil {
			c.stopSandbox(s)
			delete(c.sandboxes, uid)
		}
	}
	for uid, p := range want {
		if err := c.writeVolumes(p); err != nil {
			log.Printf("pod %s/%s: %v", p.Namespace, p.Name, err)
		}
		if c.sandboxes[uid] == nil {
			s, err := c.startSandbox(p, c.nodeState[p.Spec.NodeName])
			if err != nil {
				log.Printf("pod %s/%s: %v", p.Namespace, p.Name, err)
				continue
			}
			c.sandboxes[uid] = s
		}
	}
	features := c.nodeFeatureLabels()
	for name, st := range c.nodeState {
		st.dm.release(active[name], listed)
		st.dm.ensureStatus(served[name])
		if features != nil {
			c.applyNFD(st, served[name], features[name])
		}
	}
}

// newNode makes the node's directory, its NVML description and its device manager.
func (c *controller) newNode(n *corev1.Node) (*nodeState, error) {
	dir := c.nodeDir(n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	it := c.fx.InstanceTypes[n.Labels["node.kubernetes.io/instance-type"]]
	model, ok := c.fx.Models[it.GPU.Name]
	if !ok {
		return nil, fmt.Errorf("fixture has no gpu_models entry for %q", it.GPU.Name)
	}
	var devs []nvmlspec.GPU
	for i := 0; i < it.GPU.Count; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", n.Name, i)))
		uuid := fmt.Sprintf("GPU-%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
		devs = append(devs, nvmlspec.GPU{Name: model.Product, UUID: uuid,
			PCIBusID:    fmt.Sprintf("00000000:00:%02X.0", 0x1e-it.GPU.Count+1+i),
			PCIDeviceID: model.PCIDeviceID, MemoryMiB: it.GPU.MemoryMiB, ComputeCapability: model.ComputeCapability,
			Architecture: model.Architecture, MinorNumber: uint32(i), MigCapable: model.MigCapable})
	}
	mig, err := applyMigLayout(dir, n.Name, model.Product, n.Labels[migConfigLabel], devs)
	if err != nil {
		return nil, err
	}
	nv := nvmlspec.Config{DriverVersion: c.fx.Driver.Version, CudaDriverVersion: c.fx.Driver.CudaVersion,
		NVMLVersion: fmt.Sprintf("%d.%s", c.fx.Driver.CudaVersion/1000, c.fx.Driver.Version), Devices: devs}
	data, _ := json.MarshalIndent(nv, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "nvml.json"), data, 0o644); err != nil {
		return nil, err
	}
	var busIDs []string
	for _, d := range devs {
		busIDs = append(busIDs, d.PCIBusID)
	}
	if err := writeNodeSysfs(filepath.Join(dir, "sys"), n.Labels["node.kubernetes.io/instance-type"], busIDs,
		model.PCIDeviceID>>16); err != nil {
		return nil, err
	}
	dm, err := newDeviceManager(n.Name, c.hostPath(n.Name, "/var/lib/kubelet/device-plugins"), c.kc, c.grace)
	if err != nil {
		return nil, err
	}
	log.Printf("node %s: %d x %s, device manager at %s", n.Name, it.GPU.Count, model.Product, dm.dir)
	return &nodeState{name: n.Name, dir: dir, dm: dm, nfdLabels: map[string]string{}, mig: mig}, nil
}

// emulatedSysfs are the node's sysfs paths that pod-sandbox mounts over this machine's in every
// chart pod: what NVIDIA's binaries read there (GFD: the machine type from DMI and, through
// go-nvlib's nvpci, each GPU's PCI class for nvidia.com/gpu.mode; the plugin: NUMA nodes).
var emulatedSysfs = []string{"/sys/class/dmi/id", "/sys/bus/pci/devices"}

// writeNodeSysfs writes the node's emulated sysfs (EMULATION, under the node's directory):
// DMI's product_name is the instance type, as on EC2's Nitro instances; one PCI device directory
// per GPU (vendor NVIDIA, the model's device id, class 0x030200 "3D controller" as datacenter GPUs
// report, no NUMA affinity, no BARs, a configuration space without capabilities).
func writeNodeSysfs(root, instanceType string, busIDs []string, pciDevice uint32) error {
	files := map[string]string{"class/dmi/id/product_name": instanceType + "\n"}
	for _, id := range busIDs {
		// NVML's 00000000:00:1E.0 is sysfs's 0000:00:1e.0
		dev := "bus/pci/devices/" + strings.ToLower(strings.TrimPrefix(id, "0000"))
		for name, content := range map[string]string{"vendor": "0x10de", "device": fmt.Sprintf("0x%04x", pciDevice),
			"class": "0x030200", "numa_node": "-1",
			"resource": "0x0000000000000000 0x0000000000000000 0x0000000000000000"} {
			files[dev+"/"+name] = content + "\n"
		}
		// The 256-byte configuration space GFD's vGPU check reads: IDs and class, and no
		// capability list (so no vGPU capability: a pass-through GPU, as on EC2).
		config := make([]byte, 256)
		config[0], config[1], config[2], config[3] = 0xde, 0x10, byte(pciDevice), byte(pciDevice>>8)
		config[0x0a], config[0x0b] = 0x02, 0x03
		files[dev+"/config"] = string(config)
	}
	for rel, content := range files {
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o444); err != nil {
			return err
		}
	}
	return nil
}

// nodeDir is the node's directory: its name, shortened for long names (Karpenter's) because
// kubelet.sock's path must fit a unix socket address (108 bytes).
func (c *controller) nodeDir(node string) string {
	if len(node) > 32 {
		sum := sha256.Sum256([]byte(node))
		node = fmt.Sprintf("%s-%x", node[:16], sum[:4])
	}
	return filepath.Join(c.workdir, node)
}

// hostPath is where a hostPath of the node lives on this machine (kubelet's socket directory
// right under the node's directory, to keep socket paths short).
func (c *controller) hostPath(node, path string) string {
	if filepath.Clean(path) == "/var/lib/kubelet/device-plugins" {
		return filepath.Join(c.nodeDir(node), "device-plugins")
	}
	return filepath.Join(c.nodeDir(node), "host", path)
}

func (c *controller) podDir(p *corev1.Pod) string {
	return filepath.Join(c.nodeDir(p.Spec.NodeName), "pods", p.Namespace+"_"+p.Name+"_"+string(p.UID))
}

// writeVolumes makes the pod's emptyDir volumes and keeps its configMap volumes as files, one
// per key (kubelet's projection of a ConfigMap volume).
func (c *controller) writeVolumes(p *corev1.Pod) error {
	for _, v := range p.Spec.Volumes {
		if v.ConfigMap == nil && v.EmptyDir == nil {
			continue
		}
		dir := filepath.Join(c.podDir(p), "volumes", v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if v.ConfigMap == nil {
			continue
		}
		cm, err := c.cms.ConfigMaps(p.Namespace).Get(v.ConfigMap.Name)
		data := map[string]string{}
		if err == nil {
			data = cm.Data
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if _, ok := data[e.Name()]; !ok {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
		for k, val := range data {
			path := filepath.Join(dir, k)
			if old, err := os.ReadFile(path); err == nil && string(old) == val {
				continue
			}
			tmp := path + ".tmp"
			if err := os.WriteFile(tmp, []byte(val), 0o644); err != nil {
				return err
			}
			if err := os.Rename(tmp, path); err != nil {
				return err
			}
		}
	}
	return nil
}

// startSandbox turns the pod spec into processes: each container's command is NVIDIA's binary
// of that name, its env the pod's (fieldRefs resolved), paths under its configMap/emptyDir
// mounts rewritten to the pod's directory, hostPath mounts of the node bind-mounted where the
// binaries expect them (except /, /sys and /dev, which are this machine's), KUBECONFIG the
// cluster's where the pod would use its service account, and the emulated NVML on
// LD_LIBRARY_PATH with the node's GPUs.
func (c *controller) startSandbox(p *corev1.Pod, st *nodeState) (*sandbox, error) {
	dir := c.podDir(p)
	spec := podsandbox.Spec{Pod: p.Namespace + "/" + p.Name}
	vols := map[string]corev1.Volume{}
	for _, v := range p.Spec.Volumes {
		vols[v.Name] = v
	}
	bound := map[string]bool{}
	convert := func(ct corev1.Container) (podsandbox.Container, bool) {
		if len(ct.Command) == 0 || !runnable[ct.Command[0]] {
			return podsandbox.Container{}, false
		}
		type rewrite struct{ from, to string }
		var rewrites []rewrite
		for _, m := range ct.VolumeMounts {
			v, ok := vols[m.Name]
			if !ok {
				continue
			}
			switch {
			case v.ConfigMap != nil || v.EmptyDir != nil:
				rewrites = append(rewrites, rewrite{m.MountPath, filepath.Join(dir, "volumes", m.Name)})
			case v.HostPath != nil:
				hp := filepath.Clean(v.HostPath.Path)
				if hp == "/" || hp == "/sys" || hp == "/dev" || strings.HasPrefix(hp, "/sys/") || strings.HasPrefix(hp, "/dev/") {
					continue
				}
				src := c.hostPath(st.name, hp)
				if hp == filepath.Clean(m.MountPath) {
					if !bound[hp] {
						spec.Binds = append(spec.Binds, podsandbox.BindMount{Source: src, Target: hp})
						bound[hp] = true
					}
				} else {
					rewrites = append(rewrites, rewrite{m.MountPath, src})
				}
			}
		}
		sort.Slice(rewrites, func(i, j int) bool { return len(rewrites[i].from) > len(rewrites[j].from) })
		rw := func(s string) string {
			for _, r := range rewrites {
				if s == r.from || strings.HasPrefix(s, strings.TrimSuffix(r.from, "/")+"/") {
					return r.to + strings.TrimPrefix(s, strings.TrimSuffix(r.from, "/"))
				}
			}
			return s
		}
		env := []string{"PATH=" + c.binDir + ":/usr/bin:/bin", "LD_LIBRARY_PATH=" + c.nvmlLib,
			"GSE_NVML_CONFIG=" + filepath.Join(st.dir, "nvml.json")}
		hasKubeconfig := false
		for _, e := range ct.Env {
			val := e.Value
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				switch e.ValueFrom.FieldRef.FieldPath {
				case "spec.nodeName":
					val = p.Spec.NodeName
				case "metadata.name":
					val = p.Name
				case "metadata.namespace":
					val = p.Namespace
				}
			}
			if e.Name == "KUBECONFIG" {
				hasKubeconfig = val != ""
				if val == "" {
					val = c.kubeconfig // the pod's in-cluster service account
				}
			}
			env = append(env, e.Name+"="+rw(val))
		}
		if !hasKubeconfig {
			env = append(env, "KUBECONFIG="+c.kubeconfig)
		}
		var args []string
		for _, a := range append(append([]string{}, ct.Command[1:]...), ct.Args...) {
			args = append(args, rw(a))
		}
		return podsandbox.Container{Name: ct.Name, Path: filepath.Join(c.binDir, ct.Command[0]), Argv0: ct.Command[0],
			Args: args, Env: env,
			Log: filepath.Join(dir, "logs", ct.Name+".log")}, true
	}
	if st.mig {
		spec.Binds = append(spec.Binds, podsandbox.BindMount{Source: filepath.Join(st.dir, "proc-driver"), Target: "/proc/driver"})
	}
	for _, path := range emulatedSysfs {
		spec.Binds = append(spec.Binds, podsandbox.BindMount{Source: filepath.Join(st.dir, "sys", strings.TrimPrefix(path, "/sys/")),
			Target: path})
	}
	for _, ct := range p.Spec.InitContainers {
		if cs, ok := convert(ct); ok {
			if ct.RestartPolicy != nil && *ct.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				spec.Containers = append(spec.Containers, cs) // a native sidecar
			} else {
				spec.InitContainers = append(spec.InitContainers, cs)
			}
		}
	}
	for _, ct := range p.Spec.Containers {
		if cs, ok := convert(ct); ok {
			spec.Containers = append(spec.Containers, cs)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	data, _ := json.MarshalIndent(spec, "", "  ")
	specPath := filepath.Join(dir, "sandbox.json")
	if err := os.WriteFile(specPath, data, 0o644); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(filepath.Join(dir, "sandbox.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.sandboxBin, specPath)
	cmd.Stdout, cmd.Stderr = out, out
	// PID 1 of its own mount and PID namespaces (it makes its mounts private and mounts /proc);
	// its own process group (stopped as one); it dies with this emulator, and every process of
	// the pod dies with it (the kernel kills a PID namespace whose PID 1 exits).
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	s := &sandbox{pod: p.UID, name: p.Namespace + "/" + p.Name, node: st.name, dir: dir, cmd: cmd,
		done: make(chan struct{}), start: time.Now()}
	go func() { _ = cmd.Wait(); out.Close(); close(s.done) }()
	log.Printf("node %s: started pod %s (sandbox pid %d, %d init + %d containers)", st.name, s.name,
		cmd.Process.Pid, len(spec.InitContainers), len(spec.Containers))
	return s, nil
}

func (c *controller) stopSandbox(s *sandbox) {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(8 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	log.Printf("node %s: stopped pod %s", s.node, s.name)
}

// admitPod runs kubelet's admission for a workload pod bound to a served node and writes the
// result on the pod.
func (c *controller) admitPod(st *nodeState, p *corev1.Pod) {
	a := st.dm.admit(p)
	if a == nil || (a.rejected == "" && len(a.allocations) == 0) {
		return
	}
	if a.rejected != "" {
		if p.Status.Phase == corev1.PodFailed {
			return
		}
		msg := "Pod was rejected: " + a.rejected
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{
			"phase": "Failed", "reason": "UnexpectedAdmissionError", "message": msg}})
		if _, err := c.kc.CoreV1().Pods(p.Namespace).Patch(context.Background(), p.Name, types.MergePatchType,
			patch, metav1.PatchOptions{}, "status"); err != nil {
			log.Printf("pod %s/%s: %v", p.Namespace, p.Name, err)
			return
		}
		ev := &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{GenerateName: p.Name + ".", Namespace: p.Namespace},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID, APIVersion: "v1"},
			Reason:         "UnexpectedAdmissionError", Message: msg, Type: corev1.EventTypeWarning,
			Source: corev1.EventSource{Component: "kubelet", Host: p.Spec.NodeName}, Count: 1,
			FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(),
		}
		_, _ = c.kc.CoreV1().Events(p.Namespace).Create(context.Background(), ev, metav1.CreateOptions{})
		log.Printf("node %s: pod %s/%s failed: %s", st.name, p.Namespace, p.Name, msg)
		return
	}
	data, _ := json.Marshal(a.allocations)
	if p.Annotations[allocationAnnotation] == string(data) {
		return
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		allocationAnnotation: string(data), runByAnnotation: "kubelet-device-emulator"}}})
	if _, err := c.kc.CoreV1().Pods(p.Namespace).Patch(context.Background(), p.Name, types.MergePatchType,
		patch, metav1.PatchOptions{}); err != nil {
		log.Printf("pod %s/%s: %v", p.Namespace, p.Name, err)
		return
	}
	log.Printf("node %s: pod %s/%s admitted: %s", st.name, p.Namespace, p.Name, data)
}

var nodeFeatureGVR = schema.GroupVersionResource{Group: "nfd.k8s-sigs.io", Version: "v1alpha1", Resource: "nodefeatures"}

// nodeFeatureLabels reads every NodeFeature object once per sync (one API call, not one per
// node) and returns their labels by node; nil when the read failed (labels are then left as they are).
func (c *controller) nodeFeatureLabels() map[string]map[string]string {
	out := map[string]map[string]string{}
	list, err := c.dyn.Resource(nodeFeatureGVR).Namespace("").List(context.Background(), metav1.ListOptions{
		LabelSelector: "nfd.node.kubernetes.io/node-name"})
	if apierrors.IsNotFound(err) {
		return out // NFD's CRDs are not installed: no NodeFeature objects
	}
	if err != nil {
		log.Printf("NodeFeature list: %v", err)
		return nil
	}
	for _, item := range list.Items {
		node := item.GetLabels()["nfd.node.kubernetes.io/node-name"]
		if out[node] == nil {
			out[node] = map[string]string{}
		}
		m, _, _ := unstructuredStringMap(item.Object, "spec", "labels")
		for k, v := range m {
			out[node][k] = v
		}
	}
	return out
}

// applyNFD does what NFD master does with GFD's output: the labels of the node's NodeFeature
// objects (GFD's default, read by nodeFeatureLabels) and of features.d files (GFD with useNodeFeatureAPI=false)
// become node labels; labels it set before and no source has any more are removed.
func (c *controller) applyNFD(st *nodeState, n *corev1.Node, features map[string]string) {
	want := map[string]string{}
	for k, v := range features {
		want[k] = v
	}
	fdir := c.hostPath(st.name, "/etc/kubernetes/node-feature-discovery/features.d")
	entries, _ := os.ReadDir(fdir)
	for _, e := range entries {
		f, err := os.Open(filepath.Join(fdir, e.Name()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, _ := strings.Cut(line, "=")
			want[k] = v
		}
		f.Close()
	}
	prev := map[string]bool{}
	for _, k := range strings.Split(n.Annotations[nfdLabelsAnnotation], ",") {
		if k != "" {
			prev[k] = true
		}
	}
	changes := map[string]any{}
	for k, v := range want {
		if n.Labels[k] != v {
			changes[k] = v
		}
	}
	for k := range prev {
		if _, ok := want[k]; !ok {
			if _, has := n.Labels[k]; has {
				changes[k] = nil
			}
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ann := strings.Join(keys, ",")
	if len(changes) == 0 && n.Annotations[nfdLabelsAnnotation] == ann {
		return
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": changes,
		"annotations": map[string]string{nfdLabelsAnnotation: ann}}})
	if _, err := c.kc.CoreV1().Nodes().Patch(context.Background(), st.name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		log.Printf("node %s: label patch: %v", st.name, err)
		return
	}
	log.Printf("node %s: NFD labels %v", st.name, changes)
}

func unstructuredStringMap(obj map[string]any, path ...string) (map[string]string, bool, error) {
	cur := any(obj)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		cur = m[p]
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return nil, false, nil
	}
	out := map[string]string{}
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out, true, nil
}
