// Package gatewaytest drives several presence-gateway processes sharing one
// Redis Cluster with real WebSocket clients: the behaviour DESIGN.md asks
// of many stateless replicas (cross-replica events, a user on two replicas,
// a SIGKILLed replica's users going offline, Redis failover and outage).
package gatewaytest
