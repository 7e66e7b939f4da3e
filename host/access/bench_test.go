package access

import (
	"context"
	"testing"
	"time"
)

// BenchmarkAdmit is the gate's cost per message: an open DM with a rate
// limit (memory only), and an approved user under pairing (one store read).
func BenchmarkAdmit(b *testing.B) {
	for _, c := range []struct {
		name string
		pol  Policy
	}{{"open+limit", Policy{DM: DMOpen}}, {"pairing-approved", Policy{DM: DMPairing}}} {
		b.Run(c.name, func(b *testing.B) {
			f := newFixture(b)
			defer f.close()
			f.gate.Configure(map[string]Policy{"d": c.pol}, map[string]Limits{DefaultAgent: {MessagesPerMinute: 1 << 30}})
			f.gate.Admit("d", dm("u", "hi"))
			f.settle()
			if c.pol.DM == DMPairing {
				code := codeIn(b, f.sent.all()[0].Text)
				if _, err := f.gate.Approve(context.Background(), code); err != nil {
					b.Fatal(err)
				}
			}
			m := dm("u", "hi")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%1024 == 0 {
					f.clock.Add(time.Minute) // keep the window short
				}
				if !f.gate.Admit("d", m) {
					b.Fatal("refused")
				}
			}
		})
	}
}
