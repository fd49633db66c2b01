package jsonpath_test

import (
	"slices"
	"testing"

	"github.com/gatewaykit/gatewaykit/internal/jsonpath"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		segs    []string
		wantErr bool
	}{
		{in: "id", segs: []string{"id"}},
		{in: "user.id", segs: []string{"user", "id"}},
		{in: "orders[].total", segs: []string{"orders", "total"}},
		{in: "[].id", segs: []string{"id"}},
		{in: "matrix[][].v", segs: []string{"matrix", "v"}},
		{in: `a\.b.c`, segs: []string{"a.b", "c"}},
		{in: `a\[\]`, segs: []string{"a[]"}},
		{in: "ünï.cødé", segs: []string{"ünï", "cødé"}},
		{in: "", wantErr: true},
		{in: ".", wantErr: true},
		{in: "a.", wantErr: true},
		{in: ".a", wantErr: true},
		{in: "a..b", wantErr: true},
		{in: "a[", wantErr: true},
		{in: "a[x]", wantErr: true},
		{in: "a]", wantErr: true},
		{in: "a[]b", wantErr: true},
		{in: "[]", wantErr: true},
		{in: "[]id", wantErr: true},
		{in: `a\`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := jsonpath.Parse(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want error", tt.in, p)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !slices.Equal(p.Segments, tt.segs) {
				t.Fatalf("segments = %q, want %q", p.Segments, tt.segs)
			}
			if p.String() != tt.in && tt.in != "ünï.cødé" {
				t.Fatalf("String() = %q, want %q", p.String(), tt.in)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	long := make([]byte, jsonpath.MaxPathLen+1)
	for i := range long {
		long[i] = 'a'
	}
	if _, err := jsonpath.Parse(string(long)); err == nil {
		t.Fatal("overlong path accepted")
	}
	deep := "a"
	for range jsonpath.MaxDepth {
		deep += ".a"
	}
	if _, err := jsonpath.Parse(deep); err == nil {
		t.Fatal("overdeep path accepted")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"id", "user.id", "orders[].total", "[].id", `a\.b`, "a[][]", "a..b", "[", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := jsonpath.Parse(s)
		if err != nil {
			return
		}
		if len(p.Segments) == 0 || len(p.Segments) != len(p.Array) {
			t.Fatalf("Parse(%q) = %+v: inconsistent", s, p)
		}
		for _, seg := range p.Segments {
			if seg == "" {
				t.Fatalf("Parse(%q): empty segment", s)
			}
		}
		again, err := jsonpath.Parse(p.String())
		if err != nil {
			t.Fatalf("Parse(String()) of %q (%q): %v", s, p.String(), err)
		}
		if !slices.Equal(again.Segments, p.Segments) || !slices.Equal(again.Array, p.Array) || again.RootArray != p.RootArray {
			t.Fatalf("round trip of %q: %+v != %+v", s, again, p)
		}
	})
}

func TestIsJSONMediaType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json": true, "application/json; charset=utf-8": true, "Application/JSON": true,
		"application/problem+json": true, "application/vnd.api+json": true,
		"": false, "text/json+html": false, "text/html": false, "application/jsonx": false, "application/json;;": false,
	} {
		if got := jsonpath.IsJSONMediaType(ct); got != want {
			t.Errorf("IsJSONMediaType(%q) = %v, want %v", ct, got, want)
		}
	}
}
