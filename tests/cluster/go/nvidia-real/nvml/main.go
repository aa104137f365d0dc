// Command nvml is an EMULATED NVML: built with -buildmode=c-shared as libnvidia-ml.so.1, it
// stands in for NVIDIA's driver library under NVIDIA's unmodified device plugin and GPU
// feature discovery on simulated nodes, which have no GPUs.
//
// The GPUs come from a JSON file named by $GSE_NVML_CONFIG (written per node by
// the kubelet-device-emulator from fixtures/gpu_instance_types.yaml). Only the entry points
// the plugin and GFD need to enumerate and health-check time-sliced GPUs and MIG devices
// (mig.go) are implemented;
// every other NVML symbol they link against is exported by stubs_gen.c, which logs its name
// and returns NVML_ERROR_NOT_SUPPORTED (see hack/gen-nvml-stubs.sh).
package main

/*
#include <stdlib.h>
#include "nvml_emu.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"gpu-slicing-eks/tests/cluster/go/nvidia-real/internal/nvmlspec"
)

// NVML return codes (nvmlReturn_t).
const (
	nvmlSuccess          = 0
	nvmlUninitialized    = 1
	nvmlInvalidArgument  = 2
	nvmlNotSupported     = 3
	nvmlNotFound         = 6
	nvmlInsufficientSize = 7
	nvmlTimeout          = 10
	nvmlUnknown          = 999
)

// Handles are opaque pointers to NVML's callers; ours are small tagged integers, never dereferenced.
const (
	deviceHandleBase   = 0x6e760000
	eventSetHandleBase = 0x6e770000
)

// The node's GPUs, as kubelet-device-emulator writes them (internal/nvmlspec).
type (
	GPU        = nvmlspec.GPU
	Config     = nvmlspec.Config
	MigProfile = nvmlspec.MigProfile
	MigDevice  = nvmlspec.MigDevice
)

var (
	mu        sync.Mutex
	cfg       *Config
	initCount int
	errText   = map[int]*C.char{}
	migViews  map[int]*GPU // MIG handle -> the MIG device as a device (name, UUID, memory)
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gpu-slicing-eks emulated NVML: "+format+"\n", args...)
}

func loadConfig() (*Config, error) {
	path := os.Getenv("GSE_NVML_CONFIG")
	if path == "" {
		return nil, fmt.Errorf("GSE_NVML_CONFIG is not set (path of the node's GPU description)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

func doInit() C.gse_return {
	mu.Lock()
	defer mu.Unlock()
	if initCount == 0 {
		c, err := loadConfig()
		if err != nil {
			logf("nvmlInit failed: %v", err)
			return nvmlUnknown
		}
		cfg = c
		migViews = map[int]*GPU{}
		for i := range c.Devices {
			g := &c.Devices[i]
			for k, m := range g.MigDevices {
				p := g.Profile(m.ProfileIndex)
				if p == nil {
					logf("device %s: MIG device %s has unknown profile index %d", g.UUID, m.UUID, m.ProfileIndex)
					return nvmlUnknown
				}
				view := *g
				view.Name, view.UUID, view.MemoryMiB = m.Name, m.UUID, p.MemorySizeMB
				view.MigCapable, view.MigEnabled, view.MigProfiles, view.MigDevices = false, false, nil, nil
				migViews[migHandleBase+i*64+k] = &view
			}
		}
	}
	initCount++
	return nvmlSuccess
}

func config() *Config {
	mu.Lock()
	defer mu.Unlock()
	if initCount == 0 {
		return nil
	}
	return cfg
}

func device(h C.uintptr_t) (*GPU, C.gse_return) {
	c := config()
	if c == nil {
		return nil, nvmlUninitialized
	}
	if view, ok := migViewsNow()[int(h)]; ok {
		return view, nvmlSuccess
	}
	i := int(h) - deviceHandleBase
	if i < 0 || i >= len(c.Devices) {
		return nil, nvmlInvalidArgument
	}
	return &c.Devices[i], nvmlSuccess
}

// putString copies s with its NUL into buf[0:length], as NVML's string getters do.
func putString(buf *C.char, length C.uint, s string) C.gse_return {
	if buf == nil {
		return nvmlInvalidArgument
	}
	if uint64(len(s))+1 > uint64(length) {
		return nvmlInsufficientSize
	}
	dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(length))
	copy(dst, s)
	dst[len(s)] = 0
	return nvmlSuccess
}

//export nvmlInit_v2
func nvmlInit_v2() C.gse_return { return doInit() }

//export nvmlInit
func nvmlInit() C.gse_return { return doInit() }

//export nvmlInitWithFlags
func nvmlInitWithFlags(flags C.uint) C.gse_return { return doInit() }

//export nvmlShutdown
func nvmlShutdown() C.gse_return {
	mu.Lock()
	defer mu.Unlock()
	if initCount == 0 {
		return nvmlUninitialized
	}
	initCount--
	return nvmlSuccess
}

//export nvmlErrorString
func nvmlErrorString(r C.gse_return) *C.char {
	mu.Lock()
	defer mu.Unlock()
	if s, ok := errText[int(r)]; ok {
		return s
	}
	names := map[int]string{
		nvmlSuccess: "Success", nvmlUninitialized: "Uninitialized", nvmlInvalidArgument: "Invalid Argument",
		nvmlNotSupported: "Not Supported", nvmlNotFound: "Not Found", nvmlInsufficientSize: "Insufficient Size",
		nvmlTimeout: "Timeout", nvmlUnknown: "Unknown Error",
	}
	text, ok := names[int(r)]
	if !ok {
		text = "NVML error " + strconv.Itoa(int(r))
	}
	s := C.CString(text) // kept for the life of the process, as NVML's static strings are
	errText[int(r)] = s
	return s
}

//export nvmlSystemGetDriverVersion
func nvmlSystemGetDriverVersion(buf *C.char, length C.uint) C.gse_return {
	c := config()
	if c == nil {
		return nvmlUninitialized
	}
	return putString(buf, length, c.DriverVersion)
}

//export nvmlSystemGetNVMLVersion
func nvmlSystemGetNVMLVersion(buf *C.char, length C.uint) C.gse_return {
	c := config()
	if c == nil {
		return nvmlUninitialized
	}
	return putString(buf, length, c.NVMLVersion)
}

func cudaVersion(v *C.int) C.gse_return {
	c := config()
	if c == nil {
		return nvmlUninitialized
	}
	if v == nil {
		return nvmlInvalidArgument
	}
	*v = C.int(c.CudaDriverVersion)
	return nvmlSuccess
}

//export nvmlSystemGetCudaDriverVersion
func nvmlSystemGetCudaDriverVersion(v *C.int) C.gse_return { return cudaVersion(v) }

//export nvmlSystemGetCudaDriverVersion_v2
func nvmlSystemGetCudaDriverVersion_v2(v *C.int) C.gse_return { return cudaVersion(v) }

func deviceCount(n *C.uint) C.gse_return {
	c := config()
	if c == nil {
		return nvmlUninitialized
	}
	if n == nil {
		return nvmlInvalidArgument
	}
	*n = C.uint(len(c.Devices))
	return nvmlSuccess
}

//export nvmlDeviceGetCount_v2
func nvmlDeviceGetCount_v2(n *C.uint) C.gse_return { return deviceCount(n) }

//export nvmlDeviceGetCount
func nvmlDeviceGetCount(n *C.uint) C.gse_return { return deviceCount(n) }

func handleByIndex(i C.uint, h *C.uintptr_t) C.gse_return {
	c := config()
	if c == nil {
		return nvmlUninitialized
	}
	if h == nil || int(i) >= len(c.Devices) {
		return nvmlInvalidArgument
	}
	*h = C.uintptr_t(deviceHandleBase + int(i))
	return nvmlSuccess
}

//export nvmlDeviceGetHandleByIndex_v2
func nvmlDeviceGetHandleByIndex_v2(i C.uint, h *C.uintptr_t) C.gse_return { return handleByIndex(i, h) }

//export nvmlDeviceGetHandleByIndex
func nvmlDeviceGetHandleByIndex(i C.uint, h *C.uintptr_t) C.gse_return { return handleByIndex(i, h) }

func handleWhere(h *C.uintptr_t, match func(*GPU) bool) C.gse_return {
	c := config()
	if c == nil {
		return nvmlUninitialized
	}
	if h == nil {
		return nvmlInvalidArgument
	}
	for i := range c.Devices {
		if match(&c.Devices[i]) {
			*h = C.uintptr_t(deviceHandleBase + i)
			return nvmlSuccess
		}
	}
	return nvmlNotFound
}

//export nvmlDeviceGetHandleByUUID
func nvmlDeviceGetHandleByUUID(uuid *C.char, h *C.uintptr_t) C.gse_return {
	if uuid == nil {
		return nvmlInvalidArgument
	}
	want := C.GoString(uuid)
	if strings.HasPrefix(want, "MIG-") { // drivers since R470 find MIG devices by UUID as well
		for handle, view := range migViewsNow() {
			if view.UUID == want && h != nil {
				*h = C.uintptr_t(handle)
				return nvmlSuccess
			}
		}
	}
	return handleWhere(h, func(g *GPU) bool { return g.UUID == want })
}

func migViewsNow() map[int]*GPU {
	mu.Lock()
	defer mu.Unlock()
	return migViews
}

func handleByBusID(busID *C.char, h *C.uintptr_t) C.gse_return {
	if busID == nil {
		return nvmlInvalidArgument
	}
	want := strings.ToUpper(C.GoString(busID))
	return handleWhere(h, func(g *GPU) bool {
		id := strings.ToUpper(g.PCIBusID)
		return id == want || strings.HasSuffix(id, want) // NVML also accepts the short domain:bus:device.function
	})
}

//export nvmlDeviceGetHandleByPciBusId_v2
func nvmlDeviceGetHandleByPciBusId_v2(busID *C.char, h *C.uintptr_t) C.gse_return {
	return handleByBusID(busID, h)
}

//export nvmlDeviceGetHandleByPciBusId
func nvmlDeviceGetHandleByPciBusId(busID *C.char, h *C.uintptr_t) C.gse_return {
	return handleByBusID(busID, h)
}

//export nvmlDeviceGetIndex
func nvmlDeviceGetIndex(h C.uintptr_t, index *C.uint) C.gse_return {
	return deviceUint(h, index, func(*GPU) (uint32, C.gse_return) { return uint32(int(h) - deviceHandleBase), nvmlSuccess })
}

//export nvmlDeviceGetName
func nvmlDeviceGetName(h C.uintptr_t, buf *C.char, length C.uint) C.gse_return {
	return deviceString(h, buf, length, func(g *GPU) string { return g.Name })
}

//export nvmlDeviceGetUUID
func nvmlDeviceGetUUID(h C.uintptr_t, buf *C.char, length C.uint) C.gse_return {
	return deviceString(h, buf, length, func(g *GPU) string { return g.UUID })
}

//export nvmlDeviceGetMinorNumber
func nvmlDeviceGetMinorNumber(h C.uintptr_t, minor *C.uint) C.gse_return {
	return deviceUint(h, minor, func(g *GPU) (uint32, C.gse_return) { return g.MinorNumber, nvmlSuccess })
}

// deviceString answers a string getter of the device behind h.
func deviceString(h C.uintptr_t, buf *C.char, length C.uint, field func(*GPU) string) C.gse_return {
	g, r := device(h)
	if r != nvmlSuccess {
		return r
	}
	return putString(buf, length, field(g))
}

// deviceUint answers an unsigned-int getter of the device behind h.
func deviceUint(h C.uintptr_t, out *C.uint, value func(*GPU) (uint32, C.gse_return)) C.gse_return {
	g, r := device(h)
	if r != nvmlSuccess {
		return r
	}
	v, r := value(g)
	if r != nvmlSuccess {
		return r
	}
	if out == nil {
		return nvmlInvalidArgument
	}
	*out = C.uint(v)
	return nvmlSuccess
}

// splitBusID parses domain:bus:device.function (hex).
func splitBusID(id string) (domain, bus, dev uint64) {
	parts := strings.Split(id, ":")
	if len(parts) != 3 {
		return 0, 0, 0
	}
	domain, _ = strconv.ParseUint(parts[0], 16, 32)
	bus, _ = strconv.ParseUint(parts[1], 16, 32)
	dev, _ = strconv.ParseUint(strings.SplitN(parts[2], ".", 2)[0], 16, 32)
	return domain, bus, dev
}

func pciInfo(h C.uintptr_t, p *C.gse_pci_info) C.gse_return {
	g, r := device(h)
	if r != nvmlSuccess {
		return r
	}
	if p == nil {
		return nvmlInvalidArgument
	}
	*p = C.gse_pci_info{}
	domain, bus, dev := splitBusID(g.PCIBusID)
	p.domain, p.bus, p.device = C.uint(domain), C.uint(bus), C.uint(dev)
	p.pciDeviceId = C.uint(g.PCIDeviceID)
	p.pciSubSystemId = C.uint(g.PCISubSystemID)
	putString(&p.busId[0], C.uint(len(p.busId)), g.PCIBusID)
	legacy := fmt.Sprintf("%04x:%02x:%02x.0", domain, bus, dev)
	putString(&p.busIdLegacy[0], C.uint(len(p.busIdLegacy)), strings.ToUpper(legacy))
	return nvmlSuccess
}

//export nvmlDeviceGetPciInfo_v3
func nvmlDeviceGetPciInfo_v3(h C.uintptr_t, p *C.gse_pci_info) C.gse_return { return pciInfo(h, p) }

//export nvmlDeviceGetPciInfo_v2
func nvmlDeviceGetPciInfo_v2(h C.uintptr_t, p *C.gse_pci_info) C.gse_return { return pciInfo(h, p) }

//export nvmlDeviceGetPciInfo
func nvmlDeviceGetPciInfo(h C.uintptr_t, p *C.gse_pci_info) C.gse_return { return pciInfo(h, p) }

//export nvmlDeviceGetMemoryInfo
func nvmlDeviceGetMemoryInfo(h C.uintptr_t, m *C.gse_memory) C.gse_return {
	g, r := device(h)
	if r != nvmlSuccess {
		return r
	}
	if m == nil {
		return nvmlInvalidArgument
	}
	total := C.ulonglong(g.MemoryMiB << 20)
	m.total, m.free, m.used = total, total, 0 // nothing runs on an emulated GPU
	return nvmlSuccess
}

//export nvmlDeviceGetCudaComputeCapability
func nvmlDeviceGetCudaComputeCapability(h C.uintptr_t, major, minor *C.int) C.gse_return {
	g, r := device(h)
	if r != nvmlSuccess {
		return r
	}
	if major == nil || minor == nil {
		return nvmlInvalidArgument
	}
	ma, mi, ok := strings.Cut(g.ComputeCapability, ".")
	a, err1 := strconv.Atoi(ma)
	b, err2 := strconv.Atoi(mi)
	if !ok || err1 != nil || err2 != nil {
		logf("device %s: bad computeCapability %q", g.UUID, g.ComputeCapability)
		return nvmlUnknown
	}
	*major, *minor = C.int(a), C.int(b)
	return nvmlSuccess
}

//export nvmlDeviceGetArchitecture
func nvmlDeviceGetArchitecture(h C.uintptr_t, arch *C.uint) C.gse_return {
	return deviceUint(h, arch, func(g *GPU) (uint32, C.gse_return) { return g.Architecture, nvmlSuccess })
}

// A MIG-capable GPU reports MIG enabled when the node's MIG layout gave it MIG devices, else
// disabled; any other GPU reports NOT_SUPPORTED, as NVML does for a GPU without MIG (e.g. a T4).
//
//export nvmlDeviceGetMigMode
func nvmlDeviceGetMigMode(h C.uintptr_t, current, pending *C.uint) C.gse_return {
	g, r := device(h)
	if r != nvmlSuccess {
		return r
	}
	if !g.MigCapable || isMigHandle(h) {
		return nvmlNotSupported
	}
	if current == nil || pending == nil {
		return nvmlInvalidArgument
	}
	mode := C.uint(0)
	if g.MigEnabled {
		mode = 1 // NVML_DEVICE_MIG_ENABLE
	}
	*current, *pending = mode, mode
	return nvmlSuccess
}

//export nvmlDeviceIsMigDeviceHandle
func nvmlDeviceIsMigDeviceHandle(h C.uintptr_t, isMig *C.uint) C.gse_return {
	return deviceUint(h, isMig, func(*GPU) (uint32, C.gse_return) {
		if isMigHandle(h) {
			return 1, nvmlSuccess
		}
		return 0, nvmlSuccess
	})
}

//export nvmlDeviceGetMaxMigDeviceCount
func nvmlDeviceGetMaxMigDeviceCount(h C.uintptr_t, count *C.uint) C.gse_return {
	return deviceUint(h, count, func(g *GPU) (uint32, C.gse_return) {
		if !g.MigCapable {
			return 0, nvmlNotSupported
		}
		return 7, nvmlSuccess
	})
}

// Health checks: an event set that never sees an Xid (the emulated GPUs do not fail).

const (
	eventTypeSingleBitEcc = 0x1
	eventTypeDoubleBitEcc = 0x2
	eventTypeXidCritical  = 0x8
)

var eventSets int

//export nvmlEventSetCreate
func nvmlEventSetCreate(set *C.uintptr_t) C.gse_return {
	if config() == nil {
		return nvmlUninitialized
	}
	if set == nil {
		return nvmlInvalidArgument
	}
	mu.Lock()
	eventSets++
	*set = C.uintptr_t(eventSetHandleBase + eventSets)
	mu.Unlock()
	return nvmlSuccess
}

//export nvmlEventSetFree
func nvmlEventSetFree(set C.uintptr_t) C.gse_return { return nvmlSuccess }

//export nvmlDeviceGetSupportedEventTypes
func nvmlDeviceGetSupportedEventTypes(h C.uintptr_t, types *C.ulonglong) C.gse_return {
	if _, r := device(h); r != nvmlSuccess {
		return r
	}
	if types == nil {
		return nvmlInvalidArgument
	}
	*types = eventTypeSingleBitEcc | eventTypeDoubleBitEcc | eventTypeXidCritical
	return nvmlSuccess
}

//export nvmlDeviceRegisterEvents
func nvmlDeviceRegisterEvents(h C.uintptr_t, types C.ulonglong, set C.uintptr_t) C.gse_return {
	_, r := device(h)
	return r
}

func eventWait(timeoutMs C.uint) C.gse_return {
	time.Sleep(time.Duration(timeoutMs) * time.Millisecond)
	return nvmlTimeout
}

//export nvmlEventSetWait_v2
func nvmlEventSetWait_v2(set C.uintptr_t, data *C.gse_event_data, timeoutMs C.uint) C.gse_return {
	return eventWait(timeoutMs)
}

//export nvmlEventSetWait
func nvmlEventSetWait(set C.uintptr_t, data *C.gse_event_data, timeoutMs C.uint) C.gse_return {
	return eventWait(timeoutMs)
}

func main() {}
