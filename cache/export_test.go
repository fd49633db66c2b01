package cache

import (
	"net/http"
	"time"

	"github.com/gatewaykit/gatewaykit"
)

// Directives is the parsed Cache-Control, exported for the external tests.
type Directives = directives

// ParseCacheControl exposes parseCacheControl to tests.
func ParseCacheControl(lines []string) Directives { return parseCacheControl(lines) }

// NoStore and friends read the unexported fields.
func (d Directives) Fields() (noStore, noCache, private, public, mustRevalidate bool, maxAge, sMaxAge, swr int64, noCacheFields, privateFields []string) {
	return d.noStore, d.noCache, d.private, d.public, d.mustRevalidate, d.maxAge, d.sMaxAge, d.swr, d.noCacheFields, d.privateFields
}

// PrimaryKey exposes the key derivation to tests.
func (c *Cache) PrimaryKey(r *http.Request, id *gatewaykit.Identity) (string, bool) {
	return c.primaryKey(r, id)
}

// PathHash exposes the store key of a path's generation (Redis, custom stores) to tests.
func PathHash(path string) string { return pathHash(path) }

// MaxRevalidations exposes the cap on concurrent background revalidations to tests.
const MaxRevalidations = maxRevalidations

// DropMarker deletes the generation of the path p (a clean path) from the memory store, natively
// and as a custom store keeps it, as if it had expired or been evicted.
func (s *Memory) DropMarker(p string) {
	s.c.Invalidate(markerKey(p))
	s.c.Invalidate(plainMarkerKey(p))
}

// SetHold sets the longest a fetch may take and still be stored or shared.
func (c *Cache) SetHold(d time.Duration) { c.hold = d }
