package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzBearerToken: header parsing never panics, a token is always a trimmed substring of the
// header, and checkSingle catches every separator.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer   a.b.c  ", "Basic xyz", "Bearer", "Bearer ", "BearerX abc",
		"Bearer a b", "Bearer a,b", "bEaReR\tq", "Bearer \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok, err := bearerToken(http.Header{"Authorization": {v}})
		if err != nil || tok == "" {
			return
		}
		if tok != strings.Trim(tok, " \t") || !strings.Contains(v, tok) {
			t.Fatalf("token %q from %q", tok, v)
		}
		if strings.ContainsAny(tok, " \t,") && checkSingle(tok) == nil {
			t.Fatalf("separator in %q not caught", tok)
		}
	})
}

// FuzzExtract: the extractor honours the size cap and never returns more than one source's token.
func FuzzExtract(f *testing.F) {
	f.Add("Bearer a.b.c", "session=x", "access_token=y")
	f.Add("", "session=a; session=b", "")
	f.Add("Bearer "+strings.Repeat("a", 100), "", "access_token=1&access_token=2")
	e := extractor{bearer: true, cookie: "session", query: "access_token", max: 64}
	f.Fuzz(func(t *testing.T, authz, cookie, query string) {
		r, err := http.NewRequest(http.MethodGet, "http://gw/x?"+query, nil)
		if err != nil {
			return
		}
		r.Header.Set("Authorization", authz)
		r.Header.Set("Cookie", cookie)
		tok, err := e.token(r)
		if err == nil && (tok == "" || len(tok) > e.max) {
			t.Fatalf("token %q accepted", tok)
		}
	})
}

func FuzzMaxAge(f *testing.F) {
	for _, s := range []string{"max-age=60", "public, max-age=3600", "no-cache", "max-age=-1", `max-age="5"`,
		"max-age=99999999999999999999", "MAX-AGE=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cc string) {
		d, ok := maxAge(cc)
		if ok && (d < 0 || d > maxRefreshInterval) {
			t.Fatalf("max-age %v from %q", d, cc)
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"a"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","use":"enc"}]}`))
	f.Add([]byte(`[[[[[[[[[[]]]]]]]]]]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		keys, _, err := parseJWKS(doc)
		if err == nil && len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
		for _, k := range keys {
			if _, err := checkPublicKey(k.key); err != nil {
				t.Fatalf("weak or unsupported key accepted: %v", err)
			}
		}
	})
}

func FuzzParseAPIKey(f *testing.F) {
	f.Add("gk_0123456789abcdef_" + strings.Repeat("A", 43))
	f.Add("gk_0123456789ABCDEF_" + strings.Repeat("A", 43))
	f.Add("gk__")
	f.Fuzz(func(t *testing.T, key string) {
		id, ok := parseAPIKey(key)
		if ok && (len(id) != apiKeyIDLen || !strings.Contains(key, id) || !utf8.ValidString(id)) {
			t.Fatalf("id %q from %q", id, key)
		}
	})
}

// FuzzUniqueMembers: the duplicate-member walk never panics, never reports a duplicate in a
// document that encoding/json produced (no false positives), and finds a duplicated first member.
func FuzzUniqueMembers(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":[1,{"c":1,"c":2}]}}`, `[[[[]]]]`, `{"a":[{"b":1},{"b":1}]}`,
		`{"\u0061":1,"a":2}`, `{`, `{"a"}`, `1 2`, `{"a":1}}`, `"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		_ = uniqueMembers(doc)
		var v any
		if json.Unmarshal(doc, &v) != nil {
			return
		}
		canon, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := uniqueMembers(canon); err != nil {
			t.Fatalf("false duplicate in %s: %v", canon, err)
		}
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			var first string
			for k := range m {
				first = k
				break
			}
			kj, _ := json.Marshal(first)
			dup := append(append([]byte(`{`), kj...), []byte(`:0,`)...)
			dup = append(dup, canon[1:]...)
			if uniqueMembers(dup) == nil {
				t.Fatalf("duplicate %s not found in %s", kj, dup)
			}
		}
	})
}

// FuzzTypPolicy: the typ check never panics, rejects every non-string, and accepts exactly the
// values equal (ignoring case, with "application/" optional) to an allowed type.
func FuzzTypPolicy(f *testing.F) {
	for _, s := range []string{"JWT", "at+jwt", "application/at+JWT", "Application/JWT", "application/", "application/a/b",
		"logout+jwt", "", "text/at+jwt", "at+jwt;q=1", "\u0000", "application/application/jwt"} {
		f.Add(s)
	}
	def := defaultTypPolicy()
	allowed := func(s string) bool {
		if !strings.Contains(s, "/") {
			s = "application/" + s
		}
		return strings.EqualFold(s, "application/jwt") || strings.EqualFold(s, "application/at+jwt")
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := def.check(map[string]any{"typ": s})
		if ok := err == nil; ok != allowed(s) {
			t.Fatalf("typ %q: accepted %v, want %v", s, ok, allowed(s))
		}
		if err != nil && !errors.Is(err, ErrTokenType) {
			t.Fatalf("typ %q: class %v", s, err)
		}
		if !errors.Is(def.check(map[string]any{"typ": []byte(s)}), ErrMalformed) {
			t.Fatal("a non-string typ passed")
		}
	})
}
