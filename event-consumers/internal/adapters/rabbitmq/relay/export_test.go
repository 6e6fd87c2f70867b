package relay

import "github.com/prometheus/client_golang/prometheus"

func (m *Metrics) Published() prometheus.Counter   { return m.published }
func (m *Metrics) Confirmed() prometheus.Counter   { return m.confirmed }
func (m *Metrics) Republished() prometheus.Counter { return m.republished }
