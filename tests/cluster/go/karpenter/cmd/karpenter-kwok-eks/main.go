// Command karpenter-kwok-eks runs Karpenter v1.14.1 with its upstream KWOK cloud provider
// (sigs.k8s.io/karpenter/kwok/cloudprovider) and core controllers, unchanged, plus two small
// adapters that give its NodeClaims and Nodes the capacity a GPU node has on EKS. It is the
// upstream kwok/main.go with those adapters inserted; nothing else differs.
//
// Why: the upstream KWOK provider fills a launched NodeClaim's status and its Node from the raw
// instance type (nvidia.com/gpu = physical GPUs) and says in its own source that NodeOverlay does
// not apply there. While that node comes up, every provisioning pass then sees room for one
// one-slice pod per GPU and launches extra nodes. The AWS provider does not have that gap:
//
//  1. Its Create() applies the NodePool's NodeOverlays to the instance types and fills the
//     NodeClaim's status.capacity/allocatable from the overlaid type
//     (github.com/aws/karpenter-provider-aws v1.14.1, pkg/cloudprovider/cloudprovider.go, Create and
//     instanceToNodeClaim). overlayCreate does the same for the KWOK provider.
//  2. On EKS the kubelet registers a GPU node without nvidia.com/* resources: they appear only when
//     the device plugin registers with the kubelet. Until then Karpenter's cluster state takes the
//     NodeClaim's (overlaid) value for resources the Node lacks (pkg/controllers/state/statenode.go,
//     Allocatable). nodeWithoutDevicePluginResources creates KWOK's Nodes that way; the local
//     cluster's device-plugin emulator then advertises what the plugin would.
//
// With the NodeOverlay feature gate off both adapters still run, and the NodeClaim keeps the raw
// instance type's capacity, exactly as the AWS provider does.
package main

import (
	"context"
	"strings"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	kwok "sigs.k8s.io/karpenter/kwok/cloudprovider"
	v1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/cloudprovider/overlay"
	"sigs.k8s.io/karpenter/pkg/controllers"
	"sigs.k8s.io/karpenter/pkg/controllers/nodeoverlay"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/operator"
	"sigs.k8s.io/karpenter/pkg/operator/options"
)

// devicePluginResourcePrefix: resources that only a device plugin advertises on an EKS GPU node.
const devicePluginResourcePrefix = "nvidia.com/"

// overlayCreate is the KWOK provider whose Create() returns the NodeClaim capacity of the
// NodePool's overlaid instance type, as the AWS provider's Create() does.
type overlayCreate struct {
	cloudprovider.CloudProvider
	instanceTypes []*cloudprovider.InstanceType
	store         *nodeoverlay.InstanceTypeStore
}

func (p overlayCreate) Create(ctx context.Context, nodeClaim *v1.NodeClaim) (*v1.NodeClaim, error) {
	created, err := p.CloudProvider.Create(ctx, nodeClaim)
	if err != nil || !options.FromContext(ctx).FeatureGates.NodeOverlay {
		return created, err
	}
	// Standalone NodeClaims get no overlays on AWS either.
	nodePool, ok := nodeClaim.Labels[v1.NodePoolLabelKey]
	if !ok {
		return created, nil
	}
	name := created.Labels[corev1.LabelInstanceTypeStable]
	it, found := lo.Find(p.instanceTypes, func(i *cloudprovider.InstanceType) bool { return i.Name == name })
	if !found {
		return created, nil
	}
	overlaid, err := p.store.Apply(nodePool, it)
	if err != nil {
		// The AWS provider fails the launch too (it retries) while overlays are not yet evaluated.
		return nil, err
	}
	nonZero := func(_ corev1.ResourceName, q resource.Quantity) bool { return !q.IsZero() }
	// New maps: the ones in created are shared with the Node that KWOK creates in a goroutine.
	created.Status.Capacity = lo.Assign(lo.PickBy(created.Status.Capacity, nonZero), lo.PickBy(overlaid.Capacity, nonZero))
	created.Status.Allocatable = lo.Assign(lo.PickBy(created.Status.Allocatable, nonZero),
		lo.PickBy(overlaid.Allocatable(), nonZero))
	return created, nil
}

// nodeWithoutDevicePluginResources is the KWOK provider's client; Nodes it creates carry no
// nvidia.com/* capacity (a fresh EKS GPU node before the device plugin registers).
type nodeWithoutDevicePluginResources struct {
	client.Client
}

func (c nodeWithoutDevicePluginResources) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if node, ok := obj.(*corev1.Node); ok {
		stripped := node.DeepCopy()
		for _, list := range []corev1.ResourceList{stripped.Status.Capacity, stripped.Status.Allocatable} {
			for name := range list {
				if strings.HasPrefix(string(name), devicePluginResourcePrefix) {
					delete(list, name)
				}
			}
		}
		// The server's answer stays in the copy: KWOK reads the Node it passed in concurrently
		// (toNodeClaim), so that object is never written here.
		return c.Client.Create(ctx, stripped, opts...)
	}
	return c.Client.Create(ctx, obj, opts...)
}

func main() {
	ctx, op := operator.NewOperator()
	instanceTypes, err := kwok.ConstructInstanceTypes(ctx)
	if err != nil {
		log.FromContext(ctx).Error(err, "failed constructing instance types")
	}

	kwokProvider := kwok.NewCloudProvider(ctx, nodeWithoutDevicePluginResources{op.GetClient()}, instanceTypes)
	overlayUndecoratedCloudProvider := overlayCreate{CloudProvider: kwokProvider, instanceTypes: instanceTypes,
		store: op.InstanceTypeStore}
	cloudProvider := overlay.Decorate(overlayUndecoratedCloudProvider, op.GetClient(), op.InstanceTypeStore)
	clusterState := state.NewCluster(op.Clock, op.GetClient(), cloudProvider)
	op.
		WithControllers(ctx, controllers.NewControllers(
			ctx,
			op.Manager,
			op.Clock,
			op.GetClient(),
			op.EventRecorder,
			cloudProvider,
			overlayUndecoratedCloudProvider,
			clusterState,
			op.InstanceTypeStore,
		)...).Start(ctx)
}
