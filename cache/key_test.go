package cache_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/cache"
)

func keyRequest(host, path, query string) *http.Request {
	return &http.Request{Method: http.MethodGet, Host: host, URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{}}
}

// sortedQuery is the query as the key should see it: decoded pairs sorted by name, values of one
// name in order.
func sortedQuery(q string) ([][2]string, bool) {
	if strings.Contains(q, ";") {
		return nil, false
	}
	var out [][2]string
	for part := range strings.SplitSeq(q, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, false
		}
		out = append(out, [2]string{k, v})
	}
	slices.SortStableFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out, true
}

func FuzzCacheKey(f *testing.F) {
	f.Add("example.com", "/a", "x=1&y=2", "y=2&x=1", "alice", "bob")
	f.Add("h", "/a%2Fb", "a=%41", "a=A", "", "x")
	f.Add("h", "/", "a=1;b=2", "a=1", "u", "u")
	f.Add("h", "/p", "a+b=c", "a%20b=c", "1", "")
	f.Add("h", "/p", "a=1&a=2", "a=2&a=1", "s\x00", "s")
	c, err := cache.New()
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	f.Fuzz(func(t *testing.T, host, path, q1, q2, subA, subB string) {
		k1, ok1 := c.PrimaryKey(keyRequest(host, path, q1), nil)
		k2, ok2 := c.PrimaryKey(keyRequest(host, path, q2), nil)
		p1, v1 := sortedQuery(q1)
		p2, v2 := sortedQuery(q2)
		if ok1 != v1 || ok2 != v2 {
			t.Fatalf("parse disagreement: %q ok=%v want %v; %q ok=%v want %v", q1, ok1, v1, q2, ok2, v2)
		}
		if ok1 && ok2 && (k1 == k2) != slices.Equal(p1, p2) {
			t.Fatalf("queries %q and %q: same key %v, same parameters %v", q1, q2, k1 == k2, slices.Equal(p1, p2))
		}
		if !ok1 {
			return
		}
		a := &gatewaykit.Identity{Subject: subA, Method: "jwt"}
		b := &gatewaykit.Identity{Subject: subB, Method: "jwt"}
		ka, _ := c.PrimaryKey(keyRequest(host, path, q1), a)
		kb, _ := c.PrimaryKey(keyRequest(host, path, q1), b)
		if (ka == kb) != (subA == subB) || ka == k1 || kb == k1 {
			t.Fatalf("identities %q and %q: keys %s %s shared %s", subA, subB, ka, kb, k1)
		}
		if len(k1) != 64 || strings.Trim(k1, "0123456789abcdef") != "" {
			t.Fatalf("key %q is not 64 hex digits", k1)
		}
	})
}
