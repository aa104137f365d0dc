// Command gpu-plugin-emulator is an EMULATOR: the one stand-in for kubelet +
// NVIDIA device plugin + GPU Feature Discovery (GFD) on simulated kwok nodes
// (annotation kwok.x-k8s.io/node=fake) that have no GPUs.
//
// It watches Pods, Nodes and ConfigMaps. When a pod of NVIDIA's device-plugin
// DaemonSet is Running on a simulated node, it reads the config that pod would
// read (the ConfigMap mounted by the chart's config-manager, key chosen by the
// node label nvidia.com/device-plugin.config, DEFAULT_CONFIG or the fallback
// strategies), parses it with NVIDIA's own loader, and patches the node's
// capacity/allocatable and GFD labels as the real plugin, kubelet and GFD
// would. When the plugin pod goes away the resources drop to 0 and the GFD
// labels are removed. With failRequestsGreaterThanOne (always for MPS), a pod
// on that node asking for more than one shared device is failed as kubelet
// fails it (UnexpectedAdmissionError). Every change is logged.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"

	"gpu-slicing-eks/tests/cluster/go/nvidia/internal/emu"
)

type emulator struct {
	client    kubernetes.Interface
	namespace string
	selector  labels.Selector
	nodes     listersv1.NodeLister
	pods      cache.Indexer
	cms       listersv1.ConfigMapLister
	queue     workqueue.TypedRateLimitingInterface[string]
	dryRun    bool

	// Admission is decided once per pod, as kubelet does when it starts a
	// pod: uid -> rejection message ("" = admitted). A later config change
	// does not re-judge a pod; a rejected pod that kwok set Running again is
	// failed again with the same message.
	mu     sync.Mutex
	judged map[types.UID]string
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file (default $KUBECONFIG)")
	namespace := flag.String("namespace", "", "namespace of the device-plugin DaemonSet (default: all namespaces)")
	selector := flag.String("selector", "app.kubernetes.io/name=nvidia-device-plugin", "label selector of the chart's DaemonSet pods")
	resync := flag.Duration("resync", 30*time.Second, "informer resync period (every node is reconciled again)")
	workers := flag.Int("workers", 2, "parallel node reconcilers")
	dryRun := flag.Bool("dry-run", false, "log the changes, write nothing")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	sel, err := labels.Parse(*selector)
	if err != nil {
		log.Fatalf("invalid --selector: %v", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	client := kubernetes.NewForConfigOrDie(cfg)

	factory := informers.NewSharedInformerFactory(client, *resync)
	e := &emulator{
		client: client, namespace: *namespace, selector: sel, dryRun: *dryRun, judged: map[types.UID]string{},
		nodes: factory.Core().V1().Nodes().Lister(),
		cms:   factory.Core().V1().ConfigMaps().Lister(),
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 10*time.Second)),
	}
	podInf := factory.Core().V1().Pods().Informer()
	if err := podInf.AddIndexers(cache.Indexers{"node": func(o any) ([]string, error) {
		if p, ok := o.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		log.Fatal(err)
	}
	e.pods = podInf.GetIndexer()

	enqueuePod := func(o any) { // tombstones are unwrapped by DeleteFunc
		if p, ok := o.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			e.queue.Add(p.Spec.NodeName)
		}
	}
	// A node's state depends on its device-plugin pod; any other pod only needs judging once
	// (admission), after it is bound. Reconciling the node for every status change of every
	// workload pod re-read the plugin config thousands of times in a large verification, CPU
	// that a real cluster spends on its nodes, not next to its control plane.
	matters := func(p *corev1.Pod) bool {
		if e.chartPod(p) {
			return true
		}
		e.mu.Lock()
		msg, judged := e.judged[p.UID]
		e.mu.Unlock()
		// A rejected pod that kwok sets Running again must be failed again.
		return !judged || (msg != "" && p.Status.Phase != corev1.PodFailed)
	}
	podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueuePod,
		DeleteFunc: func(o any) {
			p, ok := o.(*corev1.Pod)
			if t, tomb := o.(cache.DeletedFinalStateUnknown); tomb {
				p, ok = t.Obj.(*corev1.Pod)
			}
			if ok && matters(p) {
				enqueuePod(p)
			}
			if ok {
				e.mu.Lock()
				delete(e.judged, p.UID)
				e.mu.Unlock()
			}
		},
		UpdateFunc: func(o, n any) {
			op, np := o.(*corev1.Pod), n.(*corev1.Pod)
			if op.ResourceVersion == np.ResourceVersion || matters(np) { // a resync, or it can change something
				enqueuePod(n)
			}
		}})
	enqueueNode := func(o any) {
		if n, ok := o.(*corev1.Node); ok {
			e.queue.Add(n.Name)
		}
	}
	factory.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueueNode,
		UpdateFunc: func(o, n any) {
			// kwok's heartbeats change only conditions; what this emulator reads and writes is
			// labels, annotations and resources (and a resync is always looked at).
			on, nn := o.(*corev1.Node), n.(*corev1.Node)
			if on.ResourceVersion == nn.ResourceVersion || !equality.Semantic.DeepEqual(on.Labels, nn.Labels) ||
				!equality.Semantic.DeepEqual(on.Annotations, nn.Annotations) ||
				!equality.Semantic.DeepEqual(on.Status.Capacity, nn.Status.Capacity) ||
				!equality.Semantic.DeepEqual(on.Status.Allocatable, nn.Status.Allocatable) {
				enqueueNode(n)
			}
		}})
	allNodes := func(any) {
		ns, _ := e.nodes.List(labels.Everything())
		for _, n := range ns {
			e.queue.Add(n.Name)
		}
	}
	factory.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: allNodes,
		DeleteFunc: allNodes, UpdateFunc: func(_, n any) { allNodes(n) }})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	factory.Start(ctx.Done())
	for t, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			log.Fatalf("cache sync failed for %v", t)
		}
	}
	log.Printf("gpu-plugin-emulator (an emulator of kubelet + NVIDIA device plugin + GFD for kwok nodes) started: namespace=%q selector=%q dry-run=%v", *namespace, sel, *dryRun)
	for i := 0; i < *workers; i++ {
		go func() {
			for e.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	e.queue.ShutDown()
	log.Printf("gpu-plugin-emulator stopped")
}

func (e *emulator) next(ctx context.Context) bool {
	key, quit := e.queue.Get()
	if quit {
		return false
	}
	defer e.queue.Done(key)
	if err := e.reconcile(ctx, key); err != nil {
		log.Printf("node %s: %v (retrying)", key, err)
		e.queue.AddRateLimited(key)
		return true
	}
	e.queue.Forget(key)
	return true
}

// chartPod tells whether a pod belongs to the device-plugin chart being emulated.
func (e *emulator) chartPod(p *corev1.Pod) bool {
	return (e.namespace == "" || p.Namespace == e.namespace) && e.selector.Matches(labels.Set(p.Labels))
}

// role tells which component of the chart a pod runs, by its main container's command.
func role(p *corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		if len(c.Command) > 0 {
			switch path.Base(c.Command[0]) {
			case "nvidia-device-plugin", "gpu-feature-discovery", "mps-control-daemon":
				return path.Base(c.Command[0])
			}
		}
	}
	return ""
}

func running(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning
}

func (e *emulator) reconcile(ctx context.Context, nodeName string) error {
	node, err := e.nodes.Get(nodeName)
	if err != nil {
		return nil // deleted
	}
	if node.Annotations[emu.AnnotationFakeNode] != "fake" {
		return nil
	}
	gpu := emu.GPUInfoFromNode(node.Labels, node.Annotations)
	recordPhysical := false
	if gpu.Source == "" {
		// Last resort: the nvidia.com/gpu capacity a node was created with
		// (Karpenter's KWOK provider copies it from its instance type), before
		// this emulator touched the node. Recorded in the annotation.
		q, ok := node.Status.Capacity[emu.GPUResource]
		if !ok || node.Annotations[emu.AnnotationEmulatedBy] != "" || q.Value() <= 0 {
			return nil // not a GPU node
		}
		gpu.Count, gpu.Source, recordPhysical = int(q.Value()), "capacity", true
	}

	objs, _ := e.pods.ByIndex("node", nodeName)
	var plugin *corev1.Pod
	var nodePods []*corev1.Pod
	for _, o := range objs {
		p := o.(*corev1.Pod)
		nodePods = append(nodePods, p)
		if e.chartPod(p) &&
			role(p) == "nvidia-device-plugin" && running(p) {
			plugin = p
		}
	}

	var st emu.NodeState
	var state string
	if plugin == nil {
		st = emu.Withdrawn(resourceNames(node.Status.Capacity))
		state = "no device-plugin pod Running: no GPUs advertised"
	} else {
		sum, desc, err := e.pluginConfig(plugin, node)
		if err != nil {
			st = emu.Withdrawn(resourceNames(node.Status.Capacity))
			state = fmt.Sprintf("plugin pod %s/%s would crash: %v", plugin.Namespace, plugin.Name, err)
		} else {
			st = emu.ZeroStale(emu.Advertised(sum, gpu), resourceNames(node.Status.Capacity))
			state = fmt.Sprintf("plugin pod %s/%s, %s: %s x%d on %d GPU(s) (from %s)", plugin.Namespace, plugin.Name, desc,
				sum.Advertised.SharingStrategy, sum.Advertised.Replicas, gpu.Count, gpu.Source)
		}
	}
	if err := e.patchNode(ctx, node, st, state, recordPhysical, gpu.Count); err != nil {
		return err
	}
	if plugin != nil {
		for _, p := range nodePods {
			if err := e.admit(ctx, p, st); err != nil {
				return err
			}
		}
	}
	return nil
}

func resourceNames(rl corev1.ResourceList) []string {
	var out []string
	for k := range rl {
		out = append(out, string(k))
	}
	return out
}

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, ev := range c.Env {
		if ev.ValueFrom == nil {
			m[ev.Name] = ev.Value
		}
	}
	return m
}

// pluginConfig finds and parses the config the plugin pod would run with.
func (e *emulator) pluginConfig(p *corev1.Pod, node *corev1.Node) (emu.Summary, string, error) {
	var pluginEnv map[string]string
	for _, c := range p.Spec.Containers {
		if len(c.Command) > 0 && path.Base(c.Command[0]) == "nvidia-device-plugin" {
			pluginEnv = envOf(c)
		}
	}
	if _, ok := pluginEnv["CONFIG_FILE"]; !ok {
		// Chart without config.map/config.name: flags (env) only.
		cfg, err := emu.LoadFile("", pluginEnv)
		if err != nil {
			return emu.Summary{}, "", err
		}
		return emu.Summarize(cfg), "no config file", nil
	}
	// The config-manager (init container, or sidecar) picks the file.
	var cm *corev1.Container
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			if len(cs[i].Command) > 0 && path.Base(cs[i].Command[0]) == "config-manager" && cm == nil {
				cm = &cs[i]
			}
		}
	}
	if cm == nil {
		return emu.Summary{}, "", fmt.Errorf("CONFIG_FILE set but no config-manager container in the pod")
	}
	cmEnv := envOf(*cm)
	srcdir := cmEnv["CONFIG_FILE_SRCDIR"]
	volName := ""
	for _, m := range cm.VolumeMounts {
		if path.Clean(m.MountPath) == path.Clean(srcdir) {
			volName = m.Name
		}
	}
	cmName := ""
	for _, v := range p.Spec.Volumes {
		if v.Name == volName && v.ConfigMap != nil {
			cmName = v.ConfigMap.Name
		}
	}
	if cmName == "" {
		return emu.Summary{}, "", fmt.Errorf("no ConfigMap volume mounted at CONFIG_FILE_SRCDIR=%q", srcdir)
	}
	configMap, err := e.cms.ConfigMaps(p.Namespace).Get(cmName)
	if err != nil {
		return emu.Summary{}, "", fmt.Errorf("ConfigMap %s/%s: %v", p.Namespace, cmName, err)
	}
	files := map[string][]byte{}
	for k, v := range configMap.Data {
		files[k] = []byte(v)
	}
	for k, v := range configMap.BinaryData {
		files[k] = v
	}
	labelKey := cmEnv["NODE_LABEL"]
	if labelKey == "" {
		labelKey = emu.DefaultConfigLabel
	}
	var fallbacks []string
	for _, f := range strings.Split(cmEnv["FALLBACK_STRATEGIES"], ",") {
		if f = strings.TrimSpace(f); f != "" {
			fallbacks = append(fallbacks, f)
		}
	}
	name, err := emu.SelectConfig(node.Labels[labelKey], cmEnv["DEFAULT_CONFIG"], fallbacks, emu.SortedKeys(files))
	if err != nil {
		return emu.Summary{}, "", fmt.Errorf("config-manager: %v", err)
	}
	var data []byte
	if name != "" {
		data = files[name]
	}
	cfg, err := emu.LoadBytes(data, pluginEnv)
	if err != nil {
		return emu.Summary{}, "", fmt.Errorf("config %q of ConfigMap %s/%s: %v", name, p.Namespace, cmName, err)
	}
	return emu.Summarize(cfg), fmt.Sprintf("config %q of ConfigMap %s/%s", name, p.Namespace, cmName), nil
}

func (e *emulator) patchNode(ctx context.Context, node *corev1.Node, st emu.NodeState, state string, recordPhysical bool, gpus int) error {
	// Metadata first: the physical GPU count must be recorded before capacity changes.
	lbl, ann := map[string]any{}, map[string]any{}
	for _, k := range emu.GFDLabels {
		want, set := st.Labels[k]
		have, has := node.Labels[k]
		if set && (!has || have != want) {
			lbl[k] = want
		} else if !set && has {
			lbl[k] = nil
		}
	}
	wantAnn := map[string]string{emu.AnnotationEmulatedBy: emu.EmulatorName, emu.AnnotationEmulatorState: state}
	if recordPhysical {
		wantAnn[emu.AnnotationPhysicalGPUs] = strconv.Itoa(gpus)
	}
	for k, v := range wantAnn {
		if node.Annotations[k] != v {
			ann[k] = v
		}
	}
	if len(lbl) > 0 {
		log.Printf("node %s: labels %s", node.Name, fmtMap(lbl))
	}
	if len(ann) > 0 {
		log.Printf("node %s: annotations %s", node.Name, fmtMap(ann))
	}
	if len(lbl)+len(ann) > 0 && !e.dryRun {
		meta := map[string]any{"uid": node.UID} // precondition: not a re-created node of the same name
		if len(lbl) > 0 {
			meta["labels"] = lbl
		}
		if len(ann) > 0 {
			meta["annotations"] = ann
		}
		body, _ := json.Marshal(map[string]any{"metadata": meta})
		if _, err := e.client.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("patch metadata: %w", err)
		}
	}
	// Status: capacity and allocatable.
	cap, alloc := map[string]string{}, map[string]string{}
	for _, k := range emu.SortedKeys(st.Resources) {
		want := resource.NewQuantity(st.Resources[k], resource.DecimalSI)
		name := corev1.ResourceName(k)
		if c, ok := node.Status.Capacity[name]; !ok || c.Cmp(*want) != 0 {
			cap[k] = want.String()
		}
		if a, ok := node.Status.Allocatable[name]; !ok || a.Cmp(*want) != 0 {
			alloc[k] = want.String()
		}
	}
	if len(cap)+len(alloc) > 0 {
		log.Printf("node %s: set capacity %v allocatable %v (%s)", node.Name, cap, alloc, state)
		if !e.dryRun {
			status := map[string]any{}
			if len(cap) > 0 {
				status["capacity"] = cap
			}
			if len(alloc) > 0 {
				status["allocatable"] = alloc
			}
			body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"uid": node.UID}, "status": status})
			if _, err := e.client.CoreV1().Nodes().Patch(ctx, node.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status"); err != nil {
				return fmt.Errorf("patch status: %w", err)
			}
		}
	}
	return nil
}

func fmtMap(m map[string]any) string {
	var parts []string
	for _, k := range emu.SortedKeys(m) {
		if m[k] == nil {
			parts = append(parts, k+"-")
		} else {
			parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
		}
	}
	return strings.Join(parts, " ")
}

// admit fails a pod bound to the node the way kubelet does when the plugin's
// Allocate refuses it. kwok marks pods Running on its own; a pod that kwok
// already made Running is still failed here (the API server allows
// Running -> Failed). If kwok sets it Running again, the next update fails it again.
func (e *emulator) admit(ctx context.Context, p *corev1.Pod, st emu.NodeState) error {
	if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return nil
	}
	e.mu.Lock()
	msg, done := e.judged[p.UID]
	e.mu.Unlock()
	if !done {
		var reqs []emu.ContainerRequest
		for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
			for _, c := range cs {
				q, ok := c.Resources.Limits[corev1.ResourceName(st.SharedResource)]
				if !ok {
					q, ok = c.Resources.Requests[corev1.ResourceName(st.SharedResource)]
				}
				if ok {
					reqs = append(reqs, emu.ContainerRequest{Container: c.Name, Count: q.Value()})
				}
			}
		}
		msg = emu.RejectMessage(st, reqs)
		e.mu.Lock()
		e.judged[p.UID] = msg
		e.mu.Unlock()
	}
	if msg == "" {
		return nil
	}
	log.Printf("pod %s/%s on node %s: phase Failed, reason %s: %s", p.Namespace, p.Name, p.Spec.NodeName, emu.RejectReason, msg)
	if e.dryRun {
		return nil
	}
	status := p.Status.DeepCopy()
	status.Phase, status.Reason, status.Message = corev1.PodFailed, emu.RejectReason, msg
	for i := range status.Conditions {
		if status.Conditions[i].Type == corev1.PodReady || status.Conditions[i].Type == corev1.ContainersReady {
			status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	// kwok may already have reported the containers running and ready; a
	// rejected pod never started any.
	notReady := false
	for i := range status.ContainerStatuses {
		status.ContainerStatuses[i].Ready, status.ContainerStatuses[i].Started = false, &notReady
	}
	body, _ := json.Marshal(map[string]any{"status": map[string]any{
		"phase": status.Phase, "reason": status.Reason, "message": status.Message, "conditions": status.Conditions,
		"containerStatuses": status.ContainerStatuses}})
	_, err := e.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("fail pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	_, _ = e.client.CoreV1().Events(p.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: p.Name + ".", Namespace: p.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID, APIVersion: "v1"},
		Reason:         emu.RejectReason, Message: msg, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: emu.EmulatorName, Host: p.Spec.NodeName},
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Count: 1,
	}, metav1.CreateOptions{})
	return nil
}
