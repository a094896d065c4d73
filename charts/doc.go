// Package charts holds the Helm chart of the operator (presence-operator/) and
// its tests: they run the real helm binary (make helm) on the chart, check it
// against what controller-gen generates into config/, and install it into a
// real kube-apiserver (envtest). `make test-helm` runs them.
package charts
