//go:build tools

// Package tools pins NVIDIA's device plugin, GPU feature discovery and config-manager
// (built unmodified by tests/cluster/build.sh from this module's go.sum).
package tools

import (
	_ "github.com/NVIDIA/k8s-device-plugin/cmd/config-manager"
	_ "github.com/NVIDIA/k8s-device-plugin/cmd/gpu-feature-discovery"
	_ "github.com/NVIDIA/k8s-device-plugin/cmd/nvidia-device-plugin"
)
