// Package nvmlspec is the contract between kubelet-device-emulator and the emulated NVML: the
// node's GPUs as the emulator writes them (<node>/nvml.json, named by $GSE_NVML_CONFIG) and the
// library reads them.
package nvmlspec

// Config is the content of $GSE_NVML_CONFIG.
type Config struct {
	DriverVersion     string `json:"driverVersion"`     // 570.172.08
	CudaDriverVersion int32  `json:"cudaDriverVersion"` // 12080 = CUDA 12.8
	NVMLVersion       string `json:"nvmlVersion"`       // 12.570.172.08
	Devices           []GPU  `json:"devices"`
}

// GPU is one emulated device.
type GPU struct {
	Name              string `json:"name"`
	UUID              string `json:"uuid"`
	PCIBusID          string `json:"pciBusId"`                 // 00000000:00:1E.0
	PCIDeviceID       uint32 `json:"pciDeviceId"`              // device<<16 | 0x10de
	PCISubSystemID    uint32 `json:"pciSubSystemId,omitempty"` //
	MemoryMiB         uint64 `json:"memoryMiB"`
	ComputeCapability string `json:"computeCapability"` // "7.5"
	Architecture      uint32 `json:"architecture"`      // NVML_DEVICE_ARCH_*
	MinorNumber       uint32 `json:"minorNumber"`
	MigCapable        bool   `json:"migCapable"`
	// MIG: enabled by the node's MIG layout, with the GPU's profiles and its MIG devices.
	MigEnabled  bool         `json:"migEnabled,omitempty"`
	MigProfiles []MigProfile `json:"migProfiles,omitempty"`
	MigDevices  []MigDevice  `json:"migDevices,omitempty"`
}

// MigProfile is one GPU instance profile of a MIG-capable GPU, at its NVML profile index.
type MigProfile struct {
	Name                string `json:"name"`  // 1g.5gb
	Index               int    `json:"index"` // NVML_GPU_INSTANCE_PROFILE_*
	ID                  uint32 `json:"id"`
	SliceCount          uint32 `json:"sliceCount"`
	InstanceCount       uint32 `json:"instanceCount"`
	MultiprocessorCount uint32 `json:"multiprocessorCount"`
	CopyEngineCount     uint32 `json:"copyEngineCount"`
	DecoderCount        uint32 `json:"decoderCount"`
	EncoderCount        uint32 `json:"encoderCount"`
	JpegCount           uint32 `json:"jpegCount"`
	OfaCount            uint32 `json:"ofaCount"`
	MemorySizeMB        uint64 `json:"memorySizeMB"`
}

// MigDevice is one MIG device: GPU instance GIID of profile ProfileIndex, compute instance 0
// over all its slices.
type MigDevice struct {
	UUID         string `json:"uuid"`
	Name         string `json:"name"`
	GIID         uint32 `json:"giId"`
	ProfileIndex int    `json:"profileIndex"`
	Start        uint32 `json:"start"` // placement: first memory slice
}

// Profile is the GPU's profile at an NVML profile index, or nil.
func (g *GPU) Profile(index int) *MigProfile {
	for i := range g.MigProfiles {
		if g.MigProfiles[i].Index == index {
			return &g.MigProfiles[i]
		}
	}
	return nil
}
