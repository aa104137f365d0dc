package main

// EMULATION of kubelet's device manager for one simulated node: the Registration service on
// <node>/host/var/lib/kubelet/device-plugins/kubelet.sock, a ListAndWatch stream per registered
// resource, node capacity (all devices) and allocatable (healthy ones) as kubelet's node status
// setter writes them, and the admission-time GetPreferredAllocation/Allocate calls.

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type endpoint struct {
	resource string
	socket   string
	conn     *grpc.ClientConn
	client   pluginapi.DevicePluginClient
	options  *pluginapi.DevicePluginOptions
	devices  map[string]string // ID -> Healthy|Unhealthy
	cancel   context.CancelFunc
	stopped  time.Time // zero while the stream is open
}

// allocation is what the plugin answered for one container of one pod.
type allocation struct {
	Resource    string            `json:"resource"`
	DeviceIDs   []string          `json:"deviceIDs"`
	Envs        map[string]string `json:"envs,omitempty"`
	CDIDevices  []string          `json:"cdiDevices,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Mounts      int               `json:"mounts,omitempty"`
	Devices     int               `json:"devices,omitempty"`
}

type admission struct {
	at          time.Time               // when admission began
	rejected    string                  // kubelet's message when the pod was refused
	allocations map[string][]allocation // container -> answers
	devices     map[string][]string     // resource -> device IDs held
}

type deviceManager struct {
	pluginapi.UnimplementedRegistrationServer
	node   string
	dir    string // the node's /var/lib/kubelet/device-plugins
	kc     kubernetes.Interface
	grace  time.Duration
	server *grpc.Server

	statusMu  sync.Mutex // one status write at a time, each from the state at its start
	admitMu   sync.Mutex // one admission at a time per node, as kubelet admits a node's pods
	mu        sync.Mutex
	endpoints map[string]*endpoint
	removed   map[string]bool
	admitted  map[types.UID]*admission
}

func newDeviceManager(node, dir string, kc kubernetes.Interface, grace time.Duration) (*deviceManager, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "kubelet.sock")
	_ = os.Remove(sock)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	m := &deviceManager{node: node, dir: dir, kc: kc, grace: grace, server: grpc.NewServer(),
		endpoints: map[string]*endpoint{}, removed: map[string]bool{}, admitted: map[types.UID]*admission{}}
	pluginapi.RegisterRegistrationServer(m.server, m)
	go func() { _ = m.server.Serve(lis) }()
	return m, nil
}

func (m *deviceManager) stop() {
	m.server.Stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.endpoints {
		e.cancel()
	}
}

// Register is the call NVIDIA's plugin makes on kubelet.sock.
func (m *deviceManager) Register(ctx context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	if r.Version != pluginapi.Version {
		return nil, fmt.Errorf("unsupported device plugin API version %q (want %q)", r.Version, pluginapi.Version)
	}
	log.Printf("node %s: plugin registered %s at %s (options %+v)", m.node, r.ResourceName, r.Endpoint, r.Options)
	go m.addEndpoint(r)
	return &pluginapi.Empty{}, nil
}

func (m *deviceManager) addEndpoint(r *pluginapi.RegisterRequest) {
	sock := filepath.Join(m.dir, r.Endpoint)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Printf("node %s: dial %s: %v", m.node, sock, err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &endpoint{resource: r.ResourceName, socket: sock, conn: conn, client: pluginapi.NewDevicePluginClient(conn),
		options: r.Options, devices: map[string]string{}, cancel: cancel}
	m.mu.Lock()
	if old := m.endpoints[r.ResourceName]; old != nil {
		old.cancel()
	}
	m.endpoints[r.ResourceName] = e
	delete(m.removed, r.ResourceName)
	m.mu.Unlock()

	stream, err := e.client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err == nil {
		for {
			resp, rerr := stream.Recv()
			if rerr != nil {
				err = rerr
				break
			}
			m.mu.Lock()
			e.devices = map[string]string{}
			for _, d := range resp.Devices {
				e.devices[d.ID] = d.Health
			}
			m.mu.Unlock()
			m.writeStatus()
		}
	}
	_ = conn.Close()
	m.mu.Lock()
	if m.endpoints[r.ResourceName] != e {
		m.mu.Unlock()
		return // replaced by a newer registration of the same resource
	}
	// kubelet marks a disconnected plugin's devices unhealthy at once and drops the resource
	// after its grace period (endpointStopGracePeriod, 5 min).
	log.Printf("node %s: %s endpoint stopped (%v)", m.node, r.ResourceName, err)
	e.stopped = time.Now()
	for id := range e.devices {
		e.devices[id] = pluginapi.Unhealthy
	}
	m.mu.Unlock()
	m.writeStatus()
	time.AfterFunc(m.grace, func() {
		m.mu.Lock()
		if m.endpoints[r.ResourceName] == e {
			delete(m.endpoints, r.ResourceName)
			m.removed[r.ResourceName] = true
		}
		m.mu.Unlock()
		m.writeStatus()
	})
}

// desiredStatus is the capacity and allocatable kubelet reports for every resource a plugin
// registered (removed ones at 0, as kubelet writes them).
func (m *deviceManager) desiredStatus() (capacity, allocatable map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	capacity, allocatable = map[string]string{}, map[string]string{}
	for name := range m.removed {
		capacity[name], allocatable[name] = "0", "0"
	}
	for name, e := range m.endpoints {
		healthy := 0
		for _, h := range e.devices {
			if h == pluginapi.Healthy {
				healthy++
			}
		}
		capacity[name] = strconv.Itoa(len(e.devices))
		allocatable[name] = strconv.Itoa(healthy)
	}
	return capacity, allocatable
}

// writeStatus patches the node's capacity and allocatable.
func (m *deviceManager) writeStatus() {
	m.statusMu.Lock()
	defer m.statusMu.Unlock()
	capacity, allocatable := m.desiredStatus()
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"capacity": capacity, "allocatable": allocatable}})
	_, err := m.kc.CoreV1().Nodes().Patch(context.Background(), m.node, types.MergePatchType, patch,
		metav1PatchOptions, "status")
	if err != nil {
		log.Printf("node %s: status patch: %v", m.node, err)
		return
	}
	log.Printf("node %s: capacity %v allocatable %v", m.node, capacity, allocatable)
}

// ensureStatus writes the status again when someone else's write (Karpenter, kwok) dropped or
// changed it: kubelet re-asserts its node status every few seconds too.
func (m *deviceManager) ensureStatus(n *corev1.Node) {
	capacity, allocatable := m.desiredStatus()
	for name, v := range capacity {
		c, a := n.Status.Capacity[corev1.ResourceName(name)], n.Status.Allocatable[corev1.ResourceName(name)]
		if c.String() != v || a.String() != allocatable[name] {
			m.writeStatus()
			return
		}
	}
}

// healthyFree lists the healthy devices of a resource that no admitted pod holds.
func (m *deviceManager) healthyFree(resource string) []string {
	e := m.endpoints[resource]
	held := map[string]bool{}
	for _, a := range m.admitted {
		for _, id := range a.devices[resource] {
			held[id] = true
		}
	}
	var free []string
	for id, h := range e.devices {
		if h == pluginapi.Healthy && !held[id] {
			free = append(free, id)
		}
	}
	sort.Strings(free)
	return free
}

// release forgets pods that are gone or finished, freeing their devices. active is the pod list
// taken at listed: a pod admitted after that is missing from it only because it is new.
func (m *deviceManager) release(active map[types.UID]bool, listed time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for uid, a := range m.admitted {
		if !active[uid] && a.at.Before(listed) {
			delete(m.admitted, uid)
		}
	}
}

// admit decides a pod once, as kubelet does when it starts it. It returns nil while a
// resource the pod asks for has no registered plugin yet (kubelet would not have had the pod
// scheduled), else the decision. Admissions of one node run one after another: the plugin's
// preferred devices may differ from the first free ones, so a choice is only final after the
// calls, and the next pod must see it (kubelet's pod admission is serial too).
func (m *deviceManager) admit(pod *corev1.Pod) *admission {
	m.admitMu.Lock()
	defer m.admitMu.Unlock()
	m.mu.Lock()
	if a, ok := m.admitted[pod.UID]; ok {
		m.mu.Unlock()
		return a
	}
	type need struct {
		container, resource string
		n                   int
	}
	var needs []need
	for _, c := range pod.Spec.Containers {
		names := make([]string, 0, len(c.Resources.Limits))
		for name := range c.Resources.Limits {
			names = append(names, string(name))
		}
		sort.Strings(names)
		for _, name := range names {
			q := c.Resources.Limits[corev1.ResourceName(name)]
			if _, known := m.endpoints[name]; !known {
				if m.removed[name] {
					needs = append(needs, need{c.Name, name, int(q.Value())})
					continue
				}
				if q.Value() > 0 && strings.HasPrefix(name, "nvidia.com/") {
					m.mu.Unlock()
					return nil
				}
				continue
			}
			if q.Value() > 0 {
				needs = append(needs, need{c.Name, name, int(q.Value())})
			}
		}
	}
	if len(needs) == 0 {
		m.mu.Unlock()
		return &admission{}
	}
	a := &admission{at: time.Now(), allocations: map[string][]allocation{}, devices: map[string][]string{}}
	m.admitted[pod.UID] = a // provisional: a status write or release meanwhile sees the pod
	type call struct {
		need
		e   *endpoint
		ids []string
	}
	var calls []call
	for _, n := range needs {
		e := m.endpoints[n.resource]
		var free []string
		if e != nil {
			free = m.healthyFree(n.resource)
		}
		if len(free) < n.n {
			a.rejected = fmt.Sprintf("Allocate failed due to requested number of devices unavailable for %s. Requested: %d, Available: %d, which is unexpected",
				n.resource, n.n, len(free))
			m.mu.Unlock()
			return a
		}
		calls = append(calls, call{need: n, e: e, ids: free})
		a.devices[n.resource] = append(a.devices[n.resource], free[:n.n]...) // provisional
	}
	m.mu.Unlock()

	var reject string
	final := map[string][]string{}
	for _, c := range calls {
		ids, err := m.allocate(c.e, c.ids, c.n, a, c.container)
		if err != nil {
			reject = fmt.Sprintf("Allocate failed due to %v, which is unexpected", err)
			break
		}
		final[c.resource] = append(final[c.resource], ids...)
	}
	m.mu.Lock()
	if reject != "" {
		a.rejected, a.devices = reject, map[string][]string{}
	} else {
		a.devices = final
	}
	m.mu.Unlock()
	return a
}

func (m *deviceManager) allocate(e *endpoint, free []string, n int, a *admission, container string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids := free[:n]
	if e.options != nil && e.options.GetPreferredAllocationAvailable {
		resp, err := e.client.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{
			ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
				AvailableDeviceIDs: free, AllocationSize: int32(n)}}})
		if err != nil {
			return nil, fmt.Errorf("device plugin GetPreferredAllocation rpc failed with err: %v", err)
		}
		if len(resp.ContainerResponses) == 1 && len(resp.ContainerResponses[0].DeviceIDs) == n {
			ids = resp.ContainerResponses[0].DeviceIDs
		}
	}
	resp, err := e.client.Allocate(ctx, &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}})
	if err != nil {
		return nil, err
	}
	if len(resp.ContainerResponses) != 1 {
		return nil, fmt.Errorf("failed to allocate devices: expected 1 container response, got %d", len(resp.ContainerResponses))
	}
	r := resp.ContainerResponses[0]
	al := allocation{Resource: e.resource, DeviceIDs: ids, Envs: r.Envs, Annotations: r.Annotations,
		Mounts: len(r.Mounts), Devices: len(r.Devices)}
	for _, d := range r.CdiDevices {
		al.CDIDevices = append(al.CDIDevices, d.Name)
	}
	m.mu.Lock()
	a.allocations[container] = append(a.allocations[container], al)
	m.mu.Unlock()
	return ids, nil
}
