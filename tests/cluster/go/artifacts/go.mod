module gpu-slicing.eks/cluster/artifacts

go 1.26.0

// Not built: these modules are downloaded for their Helm chart and CRD files
// (tests/cluster/build.sh copies them into the artifacts directory).
// k8s-device-plugin: v0.20.0 (FACTS.md) is not served by the Go module proxy reachable
// here (403 "not available"); v0.19.3 is the newest version that is, and the
// nvidia-config-parse module pins the same one.
require (
	github.com/NVIDIA/k8s-device-plugin v0.19.3
	github.com/aws/karpenter-provider-aws v1.14.1
	sigs.k8s.io/karpenter v1.14.1
)
