package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// testPlugin is a device plugin with 2 GPUs x 2 replicas that refuses more than one device per
// container, as NVIDIA's plugin does with failRequestsGreaterThanOne (its error text).
type testPlugin struct {
	pluginapi.UnimplementedDevicePluginServer
}

func (testPlugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}, nil
}

func (testPlugin) ListAndWatch(_ *pluginapi.Empty, s pluginapi.DevicePlugin_ListAndWatchServer) error {
	var devs []*pluginapi.Device
	for _, id := range []string{"GPU-a::0", "GPU-a::1", "GPU-b::0", "GPU-b::1"} {
		devs = append(devs, &pluginapi.Device{ID: id, Health: pluginapi.Healthy})
	}
	if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (testPlugin) GetPreferredAllocation(_ context.Context, r *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	time.Sleep(10 * time.Millisecond) // a plugin's answer takes time: admissions overlap it
	req := r.ContainerRequests[0]
	ids := req.AvailableDeviceIDs[len(req.AvailableDeviceIDs)-int(req.AllocationSize):] // prefer the last ones
	return &pluginapi.PreferredAllocationResponse{ContainerResponses: []*pluginapi.ContainerPreferredAllocationResponse{{DeviceIDs: ids}}}, nil
}

func (testPlugin) Allocate(_ context.Context, r *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	ids := r.ContainerRequests[0].DevicesIds
	if len(ids) > 1 {
		return nil, fmt.Errorf("invalid allocation request for %q: invalid request: maximum request size for shared resources is 1; found %d", "nvidia.com/gpu", len(ids))
	}
	gpu := strings.SplitN(ids[0], "::", 2)[0]
	return &pluginapi.AllocateResponse{ContainerResponses: []*pluginapi.ContainerAllocateResponse{{
		Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": gpu}}}}, nil
}

func gpuPod(name string, n int64) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "cuda", Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(n, resource.DecimalSI)}}}}},
	}
}

// startTestDeviceManager runs a device manager for node n1 (on a fake API) with testPlugin
// registered, and waits until the node's allocatable shows the plugin's 4 devices.
func startTestDeviceManager(t *testing.T, objects ...runtime.Object) (*fake.Clientset, *deviceManager) {
	t.Helper()
	dir := t.TempDir()
	kc := fake.NewClientset(append([]runtime.Object{&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}}, objects...)...)
	m, err := newDeviceManager("n1", dir, kc, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)

	lis, err := net.Listen("unix", filepath.Join(dir, "test.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, testPlugin{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	_, err = m.Register(context.Background(), &pluginapi.RegisterRequest{Version: pluginapi.Version, Endpoint: "test.sock",
		ResourceName: "nvidia.com/gpu", Options: &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}})
	if err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _ := kc.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
		if q, ok := n.Status.Allocatable["nvidia.com/gpu"]; ok && q.Value() == 4 {
			if c := n.Status.Capacity["nvidia.com/gpu"]; c.Value() != 4 {
				t.Fatalf("capacity %v, want 4", c.Value())
			}
			return kc, m
		}
		if time.Now().After(deadline) {
			t.Fatalf("allocatable never reached 4: %v", n.Status.Allocatable)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeviceManagerRegistersAdmitsAndRefuses(t *testing.T) {
	_, m := startTestDeviceManager(t)

	a := m.admit(gpuPod("one", 1))
	if a == nil || a.rejected != "" {
		t.Fatalf("one slice: %+v", a)
	}
	got := a.allocations["cuda"][0]
	if got.DeviceIDs[0] != "GPU-b::1" || got.Envs["NVIDIA_VISIBLE_DEVICES"] != "GPU-b" {
		t.Fatalf("one slice: took %v (preferred GPU-b::1), env %v", got.DeviceIDs, got.Envs)
	}

	a = m.admit(gpuPod("two", 2))
	want := `Allocate failed due to rpc error: code = Unknown desc = invalid allocation request for "nvidia.com/gpu": ` +
		`invalid request: maximum request size for shared resources is 1; found 2, which is unexpected`
	if a == nil || a.rejected != want {
		t.Fatalf("two slices: got %+v, want rejection %q", a, want)
	}

	a = m.admit(gpuPod("five", 5))
	if a == nil || !strings.Contains(a.rejected, "Requested: 5, Available: 3") {
		t.Fatalf("five slices: %+v", a)
	}

	// the admitted pod goes: its device is free again
	m.release(nil, time.Now())
	if free := m.healthyFree("nvidia.com/gpu"); len(free) != 4 {
		t.Fatalf("after release: free %v", free)
	}
}

// Pods admitted at the same time on one node never share a device. kubelet admits a node's
// pods one at a time, so a device chosen through GetPreferredAllocation is held before the next
// pod's choice; the admission workers here run in parallel and must keep that order (CI once saw
// two of four one-slice pods given the same replica).
func TestConcurrentAdmissionsTakeDistinctDevices(t *testing.T) {
	_, m := startTestDeviceManager(t)
	got := make([]*admission, 4)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = m.admit(gpuPod(fmt.Sprintf("p%d", i), 1))
		}()
	}
	wg.Wait()
	seen := map[string]string{}
	for i, a := range got {
		if a == nil || a.rejected != "" {
			t.Fatalf("pod p%d: %+v", i, a)
		}
		id := a.allocations["cuda"][0].DeviceIDs[0]
		if other, dup := seen[id]; dup {
			t.Fatalf("pods %s and p%d were both given %s", other, i, id)
		}
		seen[id] = fmt.Sprintf("p%d", i)
		if held := a.devices["nvidia.com/gpu"]; len(held) != 1 || held[0] != id {
			t.Fatalf("pod p%d holds %v but was allocated %s", i, held, id)
		}
	}
}

// sync() lists pods from the informer and then releases the devices of pods not in that list.
// A pod admitted by a worker after the list was taken is not in it, yet holds its devices.
func TestReleaseKeepsPodsAdmittedAfterTheList(t *testing.T) {
	_, m := startTestDeviceManager(t)
	listed := time.Now()
	a := m.admit(gpuPod("late", 1))
	if a == nil || a.rejected != "" {
		t.Fatalf("late: %+v", a)
	}
	m.release(map[types.UID]bool{}, listed)
	if free := m.healthyFree("nvidia.com/gpu"); len(free) != 3 {
		t.Fatalf("a pod admitted after the list lost its device: free %v", free)
	}
	m.release(map[types.UID]bool{}, time.Now())
	if free := m.healthyFree("nvidia.com/gpu"); len(free) != 4 {
		t.Fatalf("a pod gone before the list kept its device: free %v", free)
	}
}

// A refused pod is failed as soon as its binding is seen, even while sync() is busy with its
// periodic per-node work (here: holding its lock): kubelet decides admission before the pod
// runs, so the refusal must not wait behind other nodes' status and label writes (with 20
// nodes it used to land seconds after kwok had marked the pod Running).
func TestRefusalIsNotQueuedBehindSync(t *testing.T) {
	kc, m := startTestDeviceManager(t)
	c := &controller{kc: kc, nodeState: map[string]*nodeState{"n1": {name: "n1", dm: m}},
		sandboxes: map[types.UID]*sandbox{}, trigger: make(chan struct{}, 1), admitQ: newAdmitQueue()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer c.admitQ.ShutDown()
	if err := c.start(ctx); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock() // sync() at work
	defer c.mu.Unlock()

	if _, err := kc.CoreV1().Pods("default").Create(ctx, gpuPod("two", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, _ := kc.CoreV1().Pods("default").Get(ctx, "two", metav1.GetOptions{})
		if p.Status.Phase == corev1.PodFailed {
			if p.Status.Reason != "UnexpectedAdmissionError" ||
				!strings.Contains(p.Status.Message, "maximum request size for shared resources is 1; found 2") {
				t.Fatalf("failed with %s: %s", p.Status.Reason, p.Status.Message)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not failed within 5 s while sync() was busy: phase %q", p.Status.Phase)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
