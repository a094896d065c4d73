package gateway

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// RedisNodesKey is the key of the seed nodes in RedisNodesConfigMap, and
// the file name the pods read (REDIS_NODES_FILE).
const RedisNodesKey = "nodes"

// RedisNodesConfigMapName names the ConfigMap of gw's Redis seed nodes.
func RedisNodesConfigMapName(gw *presencev1alpha1.PresenceGateway) string {
	return gw.Name + "-redis-nodes"
}

// RedisNodesConfigMap holds the seed nodes of gw's RedisCluster, one per
// line, for the pods to mount: when the RedisCluster's nodes change, only
// this object changes, the kubelet updates the mounted file and each
// gateway moves to the new seeds without a restart.
//
// There is one per PresenceGateway rather than one per RedisCluster: it is
// owned by the PresenceGateway (deleted with it), applied in the same
// reconcile just before the Deployment that mounts it (a pod never waits
// for a missing volume), and paused with it. A change of a RedisCluster's
// nodes costs one small write per gateway referencing it, instead of the
// rollout of each of them it cost when the nodes were in the pod template.
func RedisNodesConfigMap(gw *presencev1alpha1.PresenceGateway, deps Deps) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: RedisNodesConfigMapName(gw), Namespace: gw.Namespace, Labels: ObjectLabels(gw)},
		Data:       map[string]string{RedisNodesKey: strings.Join(RedisNodes(deps.Redis), "\n") + "\n"},
	}
}
