package cache

import (
	"net/http"

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
