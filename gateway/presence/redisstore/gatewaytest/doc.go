// Package gatewaytest drives several presence-gateway processes sharing one
// Redis Cluster with real WebSocket clients: the behaviour asked of many
// stateless replicas (cross-replica events, a user on two replicas, a
// SIGKILLed replica's users going offline, a SIGSTOPped one coming back,
// Redis failover and outage). The stall test also runs one gateway on the
// embedded store, since only a real process can be stopped.
package gatewaytest
