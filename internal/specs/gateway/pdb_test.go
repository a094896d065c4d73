package gateway

import (
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

func TestPDB(t *testing.T) {
	g := NewWithT(t)
	g.Expect(PDB(testGateway(func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Replicas = ptr.To[int32](1) }))).To(BeNil(), "one pod: no PDB")
	g.Expect(PDB(testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Replicas = ptr.To[int32](1)
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MinReplicas: ptr.To[int32](1), MaxReplicas: 3}
	}))).NotTo(BeNil(), "autoscaling can reach 3 pods")
	pdb := PDB(testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.PodDisruptionBudget.MaxUnavailable = ptr.To(intstr.FromString("25%"))
	}))
	g.Expect(pdb.Spec.MaxUnavailable.String()).To(Equal("25%"))
	g.Expect(PDB(testGateway(nil)).Spec.MaxUnavailable.IntValue()).To(Equal(1))
}
