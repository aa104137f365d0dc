package main

// MIG, EMULATED: a GPU whose description has migEnabled holds the MIG devices the node's MIG
// layout gives it (written by kubelet-device-emulator): one GPU instance with one compute
// instance over all its slices per MIG device, as NVIDIA's MIG manager creates them. NVIDIA's
// plugin and GFD find them the way go-nvlib walks MIG: the device's MIG handles, their GPU and
// compute instances, and the profile tables that name them (1g.5gb...).

/*
#include "nvml_emu.h"
*/
import "C"

// Handle spaces (see deviceHandleBase): 64 entries per GPU.
const (
	migHandleBase = 0x6e780000 // + gpu*64 + MIG device index
	giHandleBase  = 0x6e790000 // + gpu*64 + GPU instance ID
	ciHandleBase  = 0x6e7a0000 // + (gpu*64 + GPU instance ID)*8 + compute instance ID
)

// ciProfileIndex is NVML_COMPUTE_INSTANCE_PROFILE_<n>_SLICE for a compute instance of n slices.
var ciProfileIndex = map[uint32]int{1: 0, 2: 1, 3: 2, 4: 3, 7: 4, 8: 5, 6: 6}

// migDevice resolves a MIG handle to its parent's index, the parent and the MIG device.
func migDevice(h C.uintptr_t) (int, *GPU, *MigDevice, C.gse_return) {
	c := config()
	if c == nil {
		return 0, nil, nil, nvmlUninitialized
	}
	i := int(h) - migHandleBase
	if i < 0 || i/64 >= len(c.Devices) || i%64 >= len(c.Devices[i/64].MigDevices) {
		return 0, nil, nil, nvmlInvalidArgument
	}
	g := &c.Devices[i/64]
	return i / 64, g, &g.MigDevices[i%64], nvmlSuccess
}

func isMigHandle(h C.uintptr_t) bool {
	_, _, _, r := migDevice(h)
	return r == nvmlSuccess
}

// gpuInstance resolves a GPU instance handle.
func gpuInstance(h C.uintptr_t) (int, *GPU, *MigDevice, C.gse_return) {
	c := config()
	if c == nil {
		return 0, nil, nil, nvmlUninitialized
	}
	i := int(h) - giHandleBase
	if i < 0 || i/64 >= len(c.Devices) {
		return 0, nil, nil, nvmlInvalidArgument
	}
	g := &c.Devices[i/64]
	for k := range g.MigDevices {
		if g.MigDevices[k].GIID == uint32(i%64) {
			return i / 64, g, &g.MigDevices[k], nvmlSuccess
		}
	}
	return 0, nil, nil, nvmlInvalidArgument
}

// setHandle and setUint answer a getter: the lookup's error, or the value through out.
func setHandle(out *C.uintptr_t, v int, r C.gse_return) C.gse_return {
	if r != nvmlSuccess {
		return r
	}
	if out == nil {
		return nvmlInvalidArgument
	}
	*out = C.uintptr_t(v)
	return nvmlSuccess
}

func setUint(out *C.uint, v uint32, r C.gse_return) C.gse_return {
	if r != nvmlSuccess {
		return r
	}
	if out == nil {
		return nvmlInvalidArgument
	}
	*out = C.uint(v)
	return nvmlSuccess
}

//export nvmlDeviceGetMigDeviceHandleByIndex
func nvmlDeviceGetMigDeviceHandleByIndex(h C.uintptr_t, index C.uint, out *C.uintptr_t) C.gse_return {
	g, r := device(h)
	if r != nvmlSuccess {
		return r
	}
	if isMigHandle(h) {
		return nvmlInvalidArgument
	}
	if !g.MigEnabled || int(index) >= len(g.MigDevices) {
		return nvmlNotFound
	}
	return setHandle(out, migHandleBase+(int(h)-deviceHandleBase)*64+int(index), nvmlSuccess)
}

//export nvmlDeviceGetDeviceHandleFromMigDeviceHandle
func nvmlDeviceGetDeviceHandleFromMigDeviceHandle(h C.uintptr_t, out *C.uintptr_t) C.gse_return {
	gpu, _, _, r := migDevice(h)
	return setHandle(out, deviceHandleBase+gpu, r)
}

//export nvmlDeviceGetGpuInstanceId
func nvmlDeviceGetGpuInstanceId(h C.uintptr_t, id *C.uint) C.gse_return {
	_, _, m, r := migDevice(h)
	if r != nvmlSuccess {
		return r
	}
	return setUint(id, m.GIID, r)
}

//export nvmlDeviceGetComputeInstanceId
func nvmlDeviceGetComputeInstanceId(h C.uintptr_t, id *C.uint) C.gse_return {
	_, _, _, r := migDevice(h)
	return setUint(id, 0, r) // one compute instance per GPU instance
}

func attributes(h C.uintptr_t, a *C.gse_device_attributes) C.gse_return {
	_, g, m, r := migDevice(h)
	if r != nvmlSuccess {
		return nvmlNotSupported // a full GPU: not emulated
	}
	if a == nil {
		return nvmlInvalidArgument
	}
	p := g.Profile(m.ProfileIndex)
	*a = C.gse_device_attributes{multiprocessorCount: C.uint(p.MultiprocessorCount),
		sharedCopyEngineCount: C.uint(p.CopyEngineCount), sharedDecoderCount: C.uint(p.DecoderCount),
		sharedEncoderCount: C.uint(p.EncoderCount), sharedJpegCount: C.uint(p.JpegCount),
		sharedOfaCount: C.uint(p.OfaCount), gpuInstanceSliceCount: C.uint(p.SliceCount),
		computeInstanceSliceCount: C.uint(p.SliceCount), memorySizeMB: C.ulonglong(p.MemorySizeMB)}
	return nvmlSuccess
}

//export nvmlDeviceGetAttributes_v2
func nvmlDeviceGetAttributes_v2(h C.uintptr_t, a *C.gse_device_attributes) C.gse_return {
	return attributes(h, a)
}

//export nvmlDeviceGetAttributes
func nvmlDeviceGetAttributes(h C.uintptr_t, a *C.gse_device_attributes) C.gse_return {
	return attributes(h, a)
}

//export nvmlDeviceGetGpuInstanceById
func nvmlDeviceGetGpuInstanceById(h C.uintptr_t, id C.uint, out *C.uintptr_t) C.gse_return {
	if _, r := device(h); r != nvmlSuccess || isMigHandle(h) {
		return nvmlInvalidArgument
	}
	gi := giHandleBase + (int(h)-deviceHandleBase)*64 + int(id)
	if _, _, _, r := gpuInstance(C.uintptr_t(gi)); r != nvmlSuccess {
		return nvmlNotFound
	}
	return setHandle(out, gi, nvmlSuccess)
}

//export nvmlGpuInstanceGetInfo
func nvmlGpuInstanceGetInfo(gi C.uintptr_t, info *C.gse_gi_info) C.gse_return {
	gpu, g, m, r := gpuInstance(gi)
	if r != nvmlSuccess {
		return r
	}
	if info == nil {
		return nvmlInvalidArgument
	}
	p := g.Profile(m.ProfileIndex)
	*info = C.gse_gi_info{device: C.uintptr_t(deviceHandleBase + gpu), id: C.uint(m.GIID), profileId: C.uint(p.ID),
		placement: C.gse_placement{start: C.uint(m.Start), size: C.uint(p.SliceCount)}}
	return nvmlSuccess
}

//export nvmlGpuInstanceGetComputeInstanceById
func nvmlGpuInstanceGetComputeInstanceById(gi C.uintptr_t, id C.uint, out *C.uintptr_t) C.gse_return {
	if _, _, _, r := gpuInstance(gi); r != nvmlSuccess {
		return r
	}
	if id != 0 {
		return nvmlNotFound
	}
	return setHandle(out, ciHandleBase+(int(gi)-giHandleBase)*8, nvmlSuccess)
}

func computeInstanceInfo(ci C.uintptr_t, info *C.gse_ci_info) C.gse_return {
	i := int(ci) - ciHandleBase
	if i < 0 || i%8 != 0 {
		return nvmlInvalidArgument
	}
	gi := C.uintptr_t(giHandleBase + i/8)
	gpu, g, m, r := gpuInstance(gi)
	if r != nvmlSuccess {
		return r
	}
	if info == nil {
		return nvmlInvalidArgument
	}
	slices := g.Profile(m.ProfileIndex).SliceCount
	*info = C.gse_ci_info{device: C.uintptr_t(deviceHandleBase + gpu), gpuInstance: gi, id: 0,
		profileId: C.uint(ciProfileIndex[slices]), placement: C.gse_placement{start: 0, size: C.uint(slices)}}
	return nvmlSuccess
}

//export nvmlComputeInstanceGetInfo_v2
func nvmlComputeInstanceGetInfo_v2(ci C.uintptr_t, info *C.gse_ci_info) C.gse_return {
	return computeInstanceInfo(ci, info)
}

//export nvmlComputeInstanceGetInfo
func nvmlComputeInstanceGetInfo(ci C.uintptr_t, info *C.gse_ci_info) C.gse_return {
	return computeInstanceInfo(ci, info)
}

//export nvmlDeviceGetGpuInstanceProfileInfo
func nvmlDeviceGetGpuInstanceProfileInfo(h C.uintptr_t, profile C.uint, info *C.gse_gi_profile_info) C.gse_return {
	g, r := device(h)
	if r != nvmlSuccess {
		return r
	}
	if !g.MigCapable || isMigHandle(h) {
		return nvmlNotSupported
	}
	p := g.Profile(int(profile))
	if p == nil {
		return nvmlNotSupported // a profile index this GPU has not
	}
	if info == nil {
		return nvmlInvalidArgument
	}
	*info = C.gse_gi_profile_info{id: C.uint(p.ID), sliceCount: C.uint(p.SliceCount),
		instanceCount: C.uint(p.InstanceCount), multiprocessorCount: C.uint(p.MultiprocessorCount),
		copyEngineCount: C.uint(p.CopyEngineCount), decoderCount: C.uint(p.DecoderCount),
		encoderCount: C.uint(p.EncoderCount), jpegCount: C.uint(p.JpegCount), ofaCount: C.uint(p.OfaCount),
		memorySizeMB: C.ulonglong(p.MemorySizeMB)}
	return nvmlSuccess
}

// A GPU instance offers the compute instance profiles up to its slice count; only the one
// spanning the whole instance (what the MIG devices here use) is described in full.
//
//export nvmlGpuInstanceGetComputeInstanceProfileInfo
func nvmlGpuInstanceGetComputeInstanceProfileInfo(gi C.uintptr_t, profile, engProfile C.uint, info *C.gse_ci_profile_info) C.gse_return {
	_, g, m, r := gpuInstance(gi)
	if r != nvmlSuccess {
		return r
	}
	p := g.Profile(m.ProfileIndex)
	if engProfile != 0 || int(profile) != ciProfileIndex[p.SliceCount] {
		return nvmlNotSupported
	}
	if info == nil {
		return nvmlInvalidArgument
	}
	*info = C.gse_ci_profile_info{id: C.uint(profile), sliceCount: C.uint(p.SliceCount), instanceCount: 1,
		multiprocessorCount: C.uint(p.MultiprocessorCount), sharedCopyEngineCount: C.uint(p.CopyEngineCount),
		sharedDecoderCount: C.uint(p.DecoderCount), sharedEncoderCount: C.uint(p.EncoderCount),
		sharedJpegCount: C.uint(p.JpegCount), sharedOfaCount: C.uint(p.OfaCount)}
	return nvmlSuccess
}
