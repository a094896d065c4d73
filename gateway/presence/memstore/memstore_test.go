package memstore_test

import (
	"testing"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/memstore"
	"github.com/presencekit/presence-operator/gateway/presence/presencetest"
)

func TestConformance(t *testing.T) {
	presencetest.Run(t, func(t *testing.T, opts presence.Options) presence.Store {
		s, err := memstore.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, presencetest.Config{})
}
