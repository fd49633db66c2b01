package jsonpath_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gatewaykit/gatewaykit/internal/jsonpath"
)

const userDoc = `{"id":7,"name":"Ada","avatar":"a.png","email":"ada@example.com","password":"x",
 "address":{"city":"Paris","zip":"75001","geo":{"lat":1,"lon":2}},
 "orders":[{"id":1,"total":10.5,"cost":3,"items":[{"sku":"a","qty":1}]},{"id":2,"total":20,"cost":4,"items":[]}],
 "tags":["a","b"], "note":"has \"quotes\" and } braces ]"}`

func TestShape(t *testing.T) {
	admin := func(r string) bool { return r == "admin" }
	tests := []struct {
		name    string
		spec    jsonpath.Spec
		doc     string
		hasRole func(string) bool
		want    string
	}{
		{name: "no rules", spec: jsonpath.Spec{}, doc: ` {"a": 1} `, want: `{"a": 1}`},
		{name: "allow top", spec: jsonpath.Spec{Allow: []string{"id", "name", "avatar"}}, doc: userDoc,
			want: `{"id":7,"name":"Ada","avatar":"a.png"}`},
		{name: "allow nested", spec: jsonpath.Spec{Allow: []string{"address.geo.lat", "address.city"}}, doc: userDoc,
			want: `{"address":{"city":"Paris","geo":{"lat":1}}}`},
		{name: "allow array field", spec: jsonpath.Spec{Allow: []string{"orders[].total"}}, doc: userDoc,
			want: `{"orders":[{"total":10.5},{"total":20}]}`},
		{name: "allow array nested array", spec: jsonpath.Spec{Allow: []string{"orders[].items[].sku"}}, doc: userDoc,
			want: `{"orders":[{"items":[{"sku":"a"}]},{"items":[]}]}`},
		{name: "allow whole subtree", spec: jsonpath.Spec{Allow: []string{"tags", "address"}, Deny: []string{"address.geo"}}, doc: userDoc,
			want: `{"address":{"city":"Paris","zip":"75001"},"tags":["a","b"]}`},
		{name: "deny", spec: jsonpath.Spec{Deny: []string{"password", "orders[].cost", "address", "tags", "note", "orders.items"}}, doc: userDoc,
			want: `{"id":7,"name":"Ada","avatar":"a.png","email":"ada@example.com","orders":[{"id":1,"total":10.5},{"id":2,"total":20}]}`},
		{name: "root array", spec: jsonpath.Spec{Allow: []string{"[].id"}}, doc: `[{"id":1,"x":2},{"id":3},5,"s"]`,
			want: `[{"id":1},{"id":3}]`},
		{name: "scalar where object expected is dropped by allow", spec: jsonpath.Spec{Allow: []string{"a.b"}}, doc: `{"a":"str","c":1}`,
			want: `{}`},
		{name: "scalar where object expected is kept by deny", spec: jsonpath.Spec{Deny: []string{"a.b"}}, doc: `{"a":"str","c":1}`,
			want: `{"a":"str","c":1}`},
		{name: "rename", spec: jsonpath.Spec{Allow: []string{"id", "avatar_url"}, Rename: map[string]string{"avatar_url": "avatar"}},
			doc: `{"id":1,"avatar_url":"u","avatar":"old"}`, want: `{"id":1,"avatar":"u"}`},
		{name: "rename shadows existing in keep-all", spec: jsonpath.Spec{Rename: map[string]string{"avatar_url": "avatar", "user.n": "name"}},
			doc: `{"avatar":"old","id":1,"avatar_url":"u","user":{"n":"x"}}`, want: `{"id":1,"avatar":"u","user":{"name":"x"}}`},
		{name: "rename absent keeps existing", spec: jsonpath.Spec{Rename: map[string]string{"avatar_url": "avatar"}},
			doc: `{"avatar":"old"}`, want: `{"avatar":"old"}`},
		{name: "rename needs quoting", spec: jsonpath.Spec{Rename: map[string]string{"a": `x"y`}},
			doc: `{"a":1}`, want: `{"x\"y":1}`},
		{name: "role hidden", spec: jsonpath.Spec{Restrict: []jsonpath.Restriction{{Roles: []string{"admin"}, Paths: []string{"email", "orders[].cost"}}}},
			doc: `{"id":1,"email":"e","orders":[{"id":1,"cost":3}]}`, want: `{"id":1,"orders":[{"id":1}]}`},
		{name: "role visible", spec: jsonpath.Spec{Restrict: []jsonpath.Restriction{{Roles: []string{"admin"}, Paths: []string{"email", "orders[].cost"}}}},
			doc: `{"id":1,"email":"e","orders":[{"id":1,"cost":3}]}`, hasRole: admin, want: `{"id":1,"email":"e","orders":[{"id":1,"cost":3}]}`},
		{name: "role visible beyond allow", spec: jsonpath.Spec{Allow: []string{"id"}, Restrict: []jsonpath.Restriction{{Roles: []string{"support", "admin"}, Paths: []string{"email"}}}},
			doc: `{"id":1,"email":"e","x":2}`, hasRole: admin, want: `{"id":1,"email":"e"}`},
		{name: "role hidden with allow", spec: jsonpath.Spec{Allow: []string{"id", "email"}, Restrict: []jsonpath.Restriction{{Roles: []string{"admin"}, Paths: []string{"email"}}}},
			doc: `{"id":1,"email":"e"}`, hasRole: func(string) bool { return false }, want: `{"id":1}`},
		{name: "escaped key", spec: jsonpath.Spec{Allow: []string{"a.b"}}, doc: `{"a\u002eb":1,"a":{"b":2}}`, want: `{"a":{"b":2}}`},
		{name: "escaped key matches", spec: jsonpath.Spec{Allow: []string{`a\.b`}}, doc: `{"a\u002eb":1,"a":{"b":2}}`, want: `{"a\u002eb":1}`},
		{name: "duplicate keys all denied", spec: jsonpath.Spec{Deny: []string{"user_id"}}, doc: `{"user_id":1,"x":1,"user_id":2}`, want: `{"x":1}`},
		{name: "whitespace", spec: jsonpath.Spec{Allow: []string{"a.b"}}, doc: "\n{ \"a\" : { \"b\" : [ 1 , 2 ] , \"c\" : 3 } , \"d\" : 4 }\n", want: `{"a":{"b":[ 1 , 2 ]}}`},
		{name: "deny below unallowed leaves no skeleton", spec: jsonpath.Spec{Allow: []string{"id"}, Deny: []string{"b.c"}},
			doc: `{"id":1,"b":{"c":1,"d":2}}`, want: `{"id":1}`},
		{name: "rename below unallowed leaves no skeleton", spec: jsonpath.Spec{Allow: []string{"id"}, Rename: map[string]string{"x.y": "z"}},
			doc: `{"id":1,"x":{"y":1}}`, want: `{"id":1}`},
		{name: "role below unallowed hidden", spec: jsonpath.Spec{Allow: []string{"id"}, Restrict: []jsonpath.Restriction{{Roles: []string{"admin"}, Paths: []string{"x.secret"}}}},
			doc: `{"id":1,"x":{"secret":2,"other":3}}`, want: `{"id":1}`},
		{name: "role below unallowed shown", spec: jsonpath.Spec{Allow: []string{"id"}, Restrict: []jsonpath.Restriction{{Roles: []string{"admin"}, Paths: []string{"x.secret"}}}},
			doc: `{"id":1,"x":{"secret":2,"other":3}}`, hasRole: admin, want: `{"id":1,"x":{"secret":2}}`},
		{name: "allowed container kept when empty", spec: jsonpath.Spec{Allow: []string{"orders[].total", "tags[].name"}},
			doc: `{"orders":[{"id":1}],"tags":[]}`, want: `{"orders":[{}],"tags":[]}`},
		{name: "scalar document", spec: jsonpath.Spec{Allow: []string{"a"}}, doc: `42`, want: `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := jsonpath.Compile(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Shape(nil, []byte(tt.doc), tt.hasRole)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid output %s", got)
			}
		})
	}
}

func TestShapeInvalid(t *testing.T) {
	s, err := jsonpath.Compile(jsonpath.Spec{Allow: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{``, `{`, `{"a":}`, `{"a":1}}`, `nul`} {
		if _, err := s.Shape(nil, []byte(doc), nil); !errors.Is(err, jsonpath.ErrInvalid) {
			t.Errorf("Shape(%q) err = %v, want ErrInvalid", doc, err)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for name, spec := range map[string]jsonpath.Spec{
		"bad allow":        {Allow: []string{"a..b"}},
		"bad deny":         {Deny: []string{""}},
		"bad rename":       {Rename: map[string]string{"a[": "b"}},
		"empty rename":     {Rename: map[string]string{"a": ""}},
		"rename collision": {Rename: map[string]string{"a": "c", "b": "c"}},
		"no role":          {Restrict: []jsonpath.Restriction{{Paths: []string{"a"}}}},
		"empty role":       {Restrict: []jsonpath.Restriction{{Roles: []string{""}, Paths: []string{"a"}}}},
		"no path":          {Restrict: []jsonpath.Restriction{{Roles: []string{"admin"}}}},
		"bad restricted":   {Restrict: []jsonpath.Restriction{{Roles: []string{"admin"}, Paths: []string{"]"}}}},
	} {
		if _, err := jsonpath.Compile(spec); err == nil {
			t.Errorf("%s: Compile accepted %+v", name, spec)
		}
	}
}

func TestLookupAndMembers(t *testing.T) {
	doc := []byte(`{"order":{"id":"o-1","product_id":42,"deep":{"x":"y"}},"arr":[1]}`)
	for path, want := range map[string]string{"order.product_id": "42", "order.id": `"o-1"`, "order.deep": `{"x":"y"}`, "arr": "[1]"} {
		p, _ := jsonpath.Parse(path)
		got, ok := jsonpath.Lookup(doc, p)
		if !ok || string(got) != want {
			t.Errorf("Lookup(%s) = %s, %v; want %s", path, got, ok, want)
		}
	}
	for _, path := range []string{"missing", "order.missing", "order.id.x", "arr.x"} {
		p, _ := jsonpath.Parse(path)
		if got, ok := jsonpath.Lookup(doc, p); ok {
			t.Errorf("Lookup(%s) = %s, want not found", path, got)
		}
	}
	var keys []string
	if err := jsonpath.Members(doc, func(k string, v []byte) bool { keys = append(keys, k+"="+string(v)); return true }); err != nil {
		t.Fatal(err)
	}
	if want := []string{`order={"id":"o-1","product_id":42,"deep":{"x":"y"}}`, "arr=[1]"}; !slices.Equal(keys, want) {
		t.Fatalf("Members = %q, want %q", keys, want)
	}
	if err := jsonpath.Members([]byte(`[1]`), func(string, []byte) bool { return true }); !errors.Is(err, jsonpath.ErrNotObject) {
		t.Fatalf("Members(array) = %v", err)
	}
	if err := jsonpath.Members([]byte(`{`), func(string, []byte) bool { return true }); !errors.Is(err, jsonpath.ErrInvalid) {
		t.Fatalf("Members(invalid) = %v", err)
	}
}

// FuzzShape checks that shaping any valid document yields valid JSON, that denied top-level
// members never survive, that an allow-list never lets an unlisted top-level member through, and
// that a Shaper without rules reproduces the document.
func FuzzShape(f *testing.F) {
	f.Add(userDoc, "id", "password")
	f.Add(`[{"a":{"b":[1,{"c":2}]}},3]`, "[].a.b[].c", "a")
	f.Add(`{"a\"b":"\\","c":[[],{}]}`, `a"b`, "c")
	f.Add(`{"x":1,"x":2}`, "x", "x")
	f.Fuzz(func(t *testing.T, doc, allow, deny string) {
		if !json.Valid([]byte(doc)) {
			return
		}
		id, _ := jsonpath.Compile(jsonpath.Spec{})
		same, err := id.Shape(nil, []byte(doc), nil)
		if err != nil || string(same) != strings.Trim(doc, " \t\r\n") {
			t.Fatalf("identity shape of %q = %q, %v", doc, same, err)
		}
		for _, spec := range []jsonpath.Spec{
			{Allow: []string{allow}},
			{Deny: []string{deny}},
			{Allow: []string{allow}, Deny: []string{deny}, Rename: map[string]string{allow: "renamed"}},
			{Allow: []string{allow}, Deny: []string{deny}},
			{Allow: []string{allow}, Rename: map[string]string{deny: "renamed"}},
			{Restrict: []jsonpath.Restriction{{Roles: []string{"r"}, Paths: []string{deny}}}},
		} {
			s, err := jsonpath.Compile(spec)
			if err != nil {
				continue
			}
			out, err := s.Shape(nil, []byte(doc), nil)
			if err != nil {
				t.Fatalf("Shape(%q, %+v): %v", doc, spec, err)
			}
			if !json.Valid(out) {
				t.Fatalf("Shape(%q, %+v) = %q: invalid JSON", doc, spec, out)
			}
			var top map[string]json.RawMessage
			if json.Unmarshal(out, &top) != nil {
				continue
			}
			p, _ := jsonpath.Parse(deny)
			if len(spec.Allow) == 0 && len(p.Segments) == 1 && p.RootArray == 0 && len(spec.Rename) == 0 {
				if _, ok := top[p.Segments[0]]; ok {
					t.Fatalf("Shape(%q, %+v) = %q kept denied %q", doc, spec, out, deny)
				}
			}
			if len(spec.Allow) == 1 {
				ap, _ := jsonpath.Parse(allow)
				for k := range top {
					if k != ap.Segments[0] && k != "renamed" {
						t.Fatalf("Shape(%q, %+v) = %q kept unlisted %q", doc, spec, out, k)
					}
				}
			}
		}
	})
}

func twentyFields() []byte {
	var b strings.Builder
	b.WriteString(`{"id":12345,"name":"Ada Lovelace","avatar":"https://cdn.example.com/a/12345.png"`)
	for i := range 17 {
		b.WriteString(`,"field_`)
		b.WriteByte(byte('a' + i))
		b.WriteString(`":"some value that a mobile client does not need"`)
	}
	b.WriteString("}")
	return []byte(b.String())
}

func BenchmarkShapeAllow20Fields(b *testing.B) {
	doc := twentyFields()
	s, err := jsonpath.Compile(jsonpath.Spec{Allow: []string{"id", "name", "avatar"}})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, len(doc))
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = s.Shape(buf[:0], doc, nil)
	}
}

// BenchmarkDecodeFilterEncode20Fields is the baseline: decode into a map, delete, re-encode.
func BenchmarkDecodeFilterEncode20Fields(b *testing.B) {
	doc := twentyFields()
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(doc, &m); err != nil {
			b.Fatal(err)
		}
		for k := range m {
			if k != "id" && k != "name" && k != "avatar" {
				delete(m, k)
			}
		}
		if _, err := json.Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSetMembers(t *testing.T) {
	tests := []struct{ doc, want string }{
		{`{"item":"x","user_id":"victim","n":1,"user\u005fid":"again","USER_ID":"x","User_Id":"y"}`, `{"item":"x","n":1,"user_id":"alice","ts":"now"}`},
		{`{}`, `{"user_id":"alice","ts":"now"}`},
		{` { "a" : [1, {"user_id":2}] } `, `{"a" : [1, {"user_id":2}],"user_id":"alice","ts":"now"}`},
	}
	fields := []jsonpath.Field{{Key: "user_id", Value: []byte(`"alice"`)}, {Key: "ts", Value: []byte(`"now"`)}, {Key: "drop"}}
	for _, tt := range tests {
		got, err := jsonpath.SetMembers(nil, []byte(tt.doc), fields)
		if err != nil || string(got) != tt.want {
			t.Errorf("SetMembers(%s) = %s, %v; want %s", tt.doc, got, err, tt.want)
		}
	}
	if _, err := jsonpath.SetMembers(nil, []byte(`[]`), fields); !errors.Is(err, jsonpath.ErrNotObject) {
		t.Errorf("array: %v", err)
	}
	if _, err := jsonpath.SetMembers(nil, []byte(`{"a":`), fields); !errors.Is(err, jsonpath.ErrInvalid) {
		t.Errorf("invalid: %v", err)
	}
}

// FuzzSetMembers checks that enrichment of any valid object yields a valid object in which the
// injected key holds exactly the injected value, whatever the client sent.
func FuzzSetMembers(f *testing.F) {
	f.Add(`{"user_id":"victim","x":1}`, "user_id")
	f.Add(`{"user\u005fid":1,"user_id":2}`, "user_id")
	f.Add(`{}`, `we"ird`)
	f.Fuzz(func(t *testing.T, doc, key string) {
		if !utf8.ValidString(key) {
			return // keys come from configuration, which New validates
		}
		out, err := jsonpath.SetMembers(nil, []byte(doc), []jsonpath.Field{{Key: key, Value: []byte(`"alice"`)}})
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("SetMembers(%q, %q) = %q: invalid JSON", doc, key, out)
		}
		count := 0
		if err := jsonpath.Members(out, func(k string, v []byte) bool {
			if strings.EqualFold(k, key) {
				count++
				if string(v) != `"alice"` {
					t.Fatalf("SetMembers(%q, %q) = %q: %q kept the value %s", doc, key, out, key, v)
				}
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if count != 1 {
			t.Fatalf("SetMembers(%q, %q) = %q: %d members named %q", doc, key, out, count, key)
		}
	})
}
