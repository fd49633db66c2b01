package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gatewaykit/gatewaykit"
)

// keyBuf is a pooled scratch buffer for building cache keys.
type keyBuf struct {
	b     []byte
	pairs []queryPair
}

type queryPair struct{ k, v string }

func newKeyBuf() any { return &keyBuf{b: make([]byte, 0, 256)} }

// appendField appends s with a uvarint length prefix, so no two field sequences encode alike.
func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// primaryKey derives the key of a request: SHA-256 over the length-prefixed method (HEAD counts as
// GET), host, escaped path, the chosen query parameters (decoded, sorted), the chosen request
// headers and the identity (authentication method, "iss" claim when it is a string, subject;
// empty for shared entries), hex encoded. ok is false when the query does
// not parse: the request then bypasses the cache rather than risk two readings of one key.
func (c *Cache) primaryKey(r *http.Request, id *gatewaykit.Identity) (key string, ok bool) {
	kb := c.keyBufs.Get().(*keyBuf)
	defer c.keyBufs.Put(kb)
	b := append(kb.b[:0], "gk1"...)
	b = appendField(b, http.MethodGet)
	b = appendField(b, r.Host)
	b = appendField(b, r.URL.EscapedPath())
	if c.cfg.queryAll || len(c.cfg.query) > 0 {
		pairs, ok := c.queryPairs(kb.pairs[:0], r.URL.RawQuery)
		kb.pairs = pairs
		if !ok {
			kb.b = b
			return "", false
		}
		b = binary.AppendUvarint(b, uint64(len(pairs)))
		for _, p := range pairs {
			b = appendField(b, p.k)
			b = appendField(b, p.v)
		}
		clear(pairs) // drop references to request strings before pooling
	}
	for _, name := range c.cfg.headers {
		b = appendValues(b, r.Header[name])
	}
	if id != nil {
		b = append(b, 'i')
		b = appendField(b, id.Method)
		iss, _ := id.Claims["iss"].(string) // a JWT sub is unique only per issuer
		b = appendField(b, iss)
		b = appendField(b, id.Subject)
	} else {
		b = append(b, 's')
	}
	kb.b = b
	return hashKey(b), true
}

// secondaryKey derives the key of a response that varies on names: the primary key plus the
// request's values of those headers.
func (c *Cache) secondaryKey(primary string, names []string, h http.Header) string {
	kb := c.keyBufs.Get().(*keyBuf)
	defer c.keyBufs.Put(kb)
	b := append(kb.b[:0], "gv1"...)
	b = appendField(b, primary)
	for _, n := range names {
		b = appendField(b, n)
		b = appendValues(b, h[n])
	}
	kb.b = b
	return hashKey(b)
}

// pathHashLen is the length of pathHash's result.
const pathHashLen = 32

// pathHash is a store key for a path's generation that carries no user data: the first 16 bytes of
// SHA-256 over "gp1" and the length-prefixed path (a genPath), hex encoded. Two paths sharing one (a
// 2^-64 chance among 2^32 paths) would only invalidate each other. Redis and custom stores use it;
// the memory store keys generations by the path itself, so a memory hit hashes nothing more.
func pathHash(path string) string {
	b := appendField(make([]byte, 0, 16+len(path)), "gp1")
	b = appendField(b, path)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:pathHashLen/2])
}

func appendValues(b []byte, vs []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(vs)))
	for _, v := range vs {
		b = appendField(b, v)
	}
	return b
}

func hashKey(b []byte) string {
	sum := sha256.Sum256(b)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

// queryPairs decodes the raw query into the pairs that belong to the key, sorted by name (values
// of one name keep their order). It reports false for a query that does not decode (bad escapes,
// semicolons), which net/url would partly drop.
func (c *Cache) queryPairs(dst []queryPair, raw string) ([]queryPair, bool) {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		if strings.IndexByte(part, ';') >= 0 {
			return dst, false
		}
		k, v, _ := strings.Cut(part, "=")
		k, err1 := unescapeQuery(k)
		v, err2 := unescapeQuery(v)
		if err1 != nil || err2 != nil {
			return dst, false
		}
		if !c.cfg.queryAll {
			if _, found := slices.BinarySearch(c.cfg.query, k); !found {
				continue
			}
		}
		dst = append(dst, queryPair{k, v})
	}
	slices.SortStableFunc(dst, func(a, b queryPair) int { return strings.Compare(a.k, b.k) })
	return dst, true
}

// unescapeQuery is url.QueryUnescape without allocating when there is nothing to decode.
func unescapeQuery(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	return url.QueryUnescape(s)
}
