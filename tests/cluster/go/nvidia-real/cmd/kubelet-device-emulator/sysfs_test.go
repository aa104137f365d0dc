package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvlib/pkg/nvpci"
)

// The emulated sysfs is read by NVIDIA's own code: go-nvlib's nvpci (GFD's nvidia.com/gpu.mode
// comes from the class it returns) must find each GPU at the bus ID the emulated NVML reports,
// and GFD reads the machine type from DMI's product_name.
func TestEmulatedSysfsIsWhatNvpciReads(t *testing.T) {
	root := t.TempDir()
	busIDs := []string{"00000000:00:1D.0", "00000000:00:1E.0"}
	if err := writeNodeSysfs(root, "g4dn.12xlarge", busIDs, 0x1eb8); err != nil {
		t.Fatal(err)
	}
	lib := nvpci.New(nvpci.WithPCIDevicesRoot(filepath.Join(root, "bus/pci/devices")))
	for _, id := range []string{"0000:00:1d.0", "0000:00:1e.0"} { // go-nvlib's GetPCIBusID form
		gpu, err := lib.GetGPUByPciBusID(id)
		if err != nil || gpu == nil {
			t.Fatalf("%s: %v, %v", id, gpu, err)
		}
		if gpu.Class != nvpci.PCI3dControllerClass || gpu.Vendor != nvpci.PCINvidiaVendorID || gpu.Device != 0x1eb8 {
			t.Fatalf("%s: class %#x vendor %#x device %#x", id, gpu.Class, gpu.Vendor, gpu.Device)
		}
		if gpu.NumaNode != -1 {
			t.Fatalf("%s: NUMA node %d, want -1 (none)", id, gpu.NumaNode)
		}
	}
	data, err := os.ReadFile(filepath.Join(root, "class/dmi/id/product_name"))
	if err != nil || strings.TrimSpace(string(data)) != "g4dn.12xlarge" {
		t.Fatalf("product_name %q, %v", data, err)
	}
}
