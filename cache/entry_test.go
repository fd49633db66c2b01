package cache_test

import (
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/cache"
)

func TestEntryBinaryRoundTrip(t *testing.T) {
	now := time.Unix(1700000000, 123)
	tests := []*cache.Entry{
		{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}, "X-Multi": {"a", "b"}}, Body: []byte("hello"),
			Vary: []string{"Accept-Language"}, Born: now, FreshUntil: now.Add(time.Minute), StaleUntil: now.Add(2 * time.Minute),
			Generation: 1<<64 - 1},
		{Vary: []string{"Accept", "Accept-Encoding"}, Born: now, FreshUntil: now, StaleUntil: now}, // marker
		{Status: 204, Born: now, FreshUntil: now, StaleUntil: now, Generation: 42},
		{Generation: 7}, // a path's generation marker in a custom store
	}
	for _, in := range tests {
		b, err := in.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var out cache.Entry
		if err := out.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if out.Status != in.Status || out.Generation != in.Generation || string(out.Body) != string(in.Body) || !reflect.DeepEqual(out.Vary, in.Vary) ||
			!out.Born.Equal(in.Born) || !out.FreshUntil.Equal(in.FreshUntil) || !out.StaleUntil.Equal(in.StaleUntil) ||
			len(out.Header) != len(in.Header) {
			t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
		}
		for k, v := range in.Header {
			if !reflect.DeepEqual(out.Header[k], v) {
				t.Fatalf("header %s = %v, want %v", k, out.Header[k], v)
			}
		}
		if len(b) > 0 { // every strict prefix is corrupt
			if err := new(cache.Entry).UnmarshalBinary(b[:len(b)-1]); !errors.Is(err, cache.ErrCorruptEntry) {
				t.Fatalf("truncated: %v", err)
			}
		}
	}
}

// Entries of the previous encoding (version 1, without a generation) are corrupt: a miss.
func TestEntryVersion1IsCorrupt(t *testing.T) {
	b, _ := (&cache.Entry{Status: 200, Body: []byte("x")}).MarshalBinary()
	b[1] = 1
	if err := new(cache.Entry).UnmarshalBinary(b); !errors.Is(err, cache.ErrCorruptEntry) {
		t.Fatalf("version 1: %v", err)
	}
}

func FuzzEntryUnmarshal(f *testing.F) {
	e := &cache.Entry{Status: 200, Header: http.Header{"A": {"b"}}, Body: []byte("x"), Vary: []string{"V"}}
	b, _ := e.MarshalBinary()
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{'G', 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		var e cache.Entry
		if err := e.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, cache.ErrCorruptEntry) {
				t.Fatalf("error %v does not wrap ErrCorruptEntry", err)
			}
			return
		}
		again, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var e2 cache.Entry
		if err := e2.UnmarshalBinary(again); err != nil || e2.Status != e.Status || e2.Generation != e.Generation || string(e2.Body) != string(e.Body) {
			t.Fatalf("re-encode of a decoded entry failed: %v", err)
		}
	})
}
