package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RedisClusterSpec describes a Redis Cluster the gateways use.
//
// +kubebuilder:validation:XValidation:rule="[has(self.external), has(self.serviceRef)].filter(x, x).size() == 1",message="give exactly one source of the cluster's nodes: spec.external.nodes (host:port seeds) or spec.serviceRef (a Service in this namespace)"
type RedisClusterSpec struct {
	// External describes a Redis Cluster that runs elsewhere (a managed
	// service, another operator, VMs) by a list of seed nodes.
	// +optional
	External *ExternalRedisCluster `json:"external,omitempty"`

	// ServiceRef names a Service in the RedisCluster's namespace in front of
	// the cluster's nodes, such as the headless Service of a StatefulSet
	// (the Bitnami redis-cluster chart creates one). The operator follows
	// its EndpointSlices and turns their ready endpoints into seed nodes
	// (status.seeds): <pod>.<service>.<namespace>.svc:<port> for a headless
	// Service whose endpoints have hostnames, <ip>:<port> otherwise.
	// Members that come and go change the gateways' seed file, not their
	// pods.
	// +optional
	ServiceRef *RedisServiceRef `json:"serviceRef,omitempty"`

	// Auth names the Secret with the Redis ACL credentials (keys username,
	// optional, and password), or the ACL user beside it (auth.username).
	// +optional
	Auth *RedisAuth `json:"auth,omitempty"`

	// TLS makes the gateways and the operator's health check speak TLS to
	// every node (the cluster's tls-port).
	// +optional
	TLS *RedisTLS `json:"tls,omitempty"`
}

// RedisTLS says how to reach the nodes over TLS. Client certificates are
// not supported: the nodes must run with tls-auth-clients no (or optional).
//
// +kubebuilder:validation:XValidation:rule="self.enabled || (!has(self.caRef) && !has(self.serverName) && !(has(self.insecureSkipVerify) && self.insecureSkipVerify))",message="spec.tls: caRef, serverName and insecureSkipVerify need enabled: true"
// +kubebuilder:validation:XValidation:rule="!(has(self.insecureSkipVerify) && self.insecureSkipVerify && has(self.caRef))",message="spec.tls: insecureSkipVerify verifies no certificate, so caRef would be ignored: set one of them"
type RedisTLS struct {
	// Enabled turns TLS on (REDIS_TLS on the gateways).
	Enabled bool `json:"enabled"`

	// CARef names the CA bundle (PEM) that signed the nodes' certificates:
	// a key of a Secret (e.g. ca.crt beside a cert-manager certificate) or
	// of a ConfigMap (e.g. a trust-manager bundle) in the RedisCluster's
	// namespace. Without it, the system roots of the gateway image (and of
	// the operator) are trusted. The gateways mount it (REDIS_TLS_CA_FILE)
	// and re-read it when it changes.
	// +optional
	CARef *KeySourceRef `json:"caRef,omitempty"`

	// ServerName is the name every node's certificate is verified against
	// (REDIS_TLS_SERVER_NAME), instead of the host of the address dialled.
	// Cluster nodes announce IP addresses, so a certificate without those
	// IPs in its SANs needs a common name here (e.g.
	// redis.example.internal, or a name a wildcard certificate covers).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`
	ServerName string `json:"serverName,omitempty"`

	// InsecureSkipVerify accepts any certificate the nodes present: the
	// traffic is encrypted but anyone on the path can read it. For tests
	// only; never in production.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// ExternalRedisCluster lists the seed nodes of an existing Redis Cluster.
type ExternalRedisCluster struct {
	// Nodes are host:port seed nodes; the gateways discover the rest of the
	// cluster from them. They become the gateways' seed nodes (their ConfigMap <name>-redis-nodes).
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=261
	// +kubebuilder:validation:items:Pattern=`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):[0-9]{1,5}$`
	// +kubebuilder:validation:XValidation:rule="self.all(n, int(n.substring(n.lastIndexOf(':') + 1)) >= 1 && int(n.substring(n.lastIndexOf(':') + 1)) <= 65535)",message="spec.external.nodes: every entry must be host:port with a port from 1 to 65535"
	Nodes []string `json:"nodes"`
}

// RedisServiceRef names a Service and the port of it that Redis serves.
type RedisServiceRef struct {
	// Name of the Service.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Port is the Service's port (spec.ports[].port) on which Redis answers;
	// the seeds use the matching endpoint port.
	// +optional
	// +kubebuilder:default=6379
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
}

// RedisAuth references the Redis credentials.
type RedisAuth struct {
	// SecretRef names a Secret in the same namespace with the keys password
	// and, optionally, username.
	SecretRef LocalRef `json:"secretRef"`

	// Username is the Redis 6+ ACL user the password belongs to, when it is
	// not in the Secret: the gateways get it as REDIS_USERNAME (a user name
	// is not a secret). Set it here or as the Secret's username key, not
	// both (the RedisCluster is then not Ready, reason InvalidSecret).
	// Without either, the password is the default user's.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[^\s]+$`
	Username string `json:"username,omitempty"`
}

// RedisClusterStatus is what the operator saw when it last checked the cluster.
type RedisClusterStatus struct {
	// ObservedGeneration is the spec generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Seeds are the seed nodes the gateways get and the health check asks,
	// as resolved from the spec: spec.external.nodes with short in-cluster
	// names qualified with this namespace, or the ready endpoints of
	// spec.serviceRef.
	// +optional
	// +listType=atomic
	Seeds []string `json:"seeds,omitempty"`

	// Nodes are the host:port of every master and replica, as the cluster
	// announces them (CLUSTER SHARDS), sorted.
	// +optional
	// +listType=atomic
	Nodes []string `json:"nodes,omitempty"`

	// ClusterState is cluster_state from CLUSTER INFO (ok or fail); empty
	// when no node answered.
	// +optional
	ClusterState string `json:"clusterState,omitempty"`

	// SlotsCovered is the number of hash slots (of 16384) served by a
	// master that is not failing (cluster_slots_ok).
	// +optional
	SlotsCovered int32 `json:"slotsCovered,omitempty"`

	// Masters is the number of shards' masters in CLUSTER SHARDS.
	// +optional
	Masters int32 `json:"masters,omitempty"`

	// Replicas is the number of replicas in CLUSTER SHARDS, over every shard.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// LastCheckTime is when a health check last confirmed this status. A
	// check that finds what the status already says refreshes it only once
	// it is older than the operator's --redis-check-heartbeat (default 5m),
	// so that a steady cluster costs almost no API writes; a check that
	// finds a change always writes it.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`

	// Conditions: Ready, Degraded, and Paused while reconciling is paused.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// RedisCluster describes a Redis Cluster that PresenceGateways reference;
// the operator checks its health and publishes it in the status.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=prc,categories=presencekit
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.clusterState`
// +kubebuilder:printcolumn:name="Slots",type=integer,JSONPath=`.status.slotsCovered`
// +kubebuilder:printcolumn:name="Masters",type=integer,JSONPath=`.status.masters`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.replicas`
// +kubebuilder:printcolumn:name="TLS",type=boolean,priority=1,JSONPath=`.spec.tls.enabled`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
type RedisCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RedisClusterSpec   `json:"spec"`
	Status RedisClusterStatus `json:"status,omitempty"`
}

// RedisClusterList is a list of RedisCluster.
//
// +kubebuilder:object:root=true
type RedisClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RedisCluster `json:"items"`
}
