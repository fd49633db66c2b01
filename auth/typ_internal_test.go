package auth

import "testing"

// BenchmarkTypCheck is the explicit-typing check of a cache miss (a header golang-jwt parsed): it
// must not allocate for an accepted type.
func BenchmarkTypCheck(b *testing.B) {
	p := defaultTypPolicy()
	for _, typ := range []string{"JWT", "application/at+jwt"} {
		b.Run(typ, func(b *testing.B) {
			h := map[string]any{"alg": "ES256", "kid": "key-1", "typ": typ}
			b.ReportAllocs()
			for b.Loop() {
				if err := p.check(h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
