package cache

import (
	"encoding/binary"
	"errors"
	"net/http"
	"time"
)

// Entry is one stored response, or a Vary marker. Stores keep entries as given and must treat
// them as read-only; the middleware never modifies an entry after handing it to a store, so an
// in-process store may share one *Entry between concurrent readers.
//
// A Vary marker is an entry with Status 0: it records, under the request's primary key, which
// request headers the upstream said its response varies on. The response itself is stored under
// a secondary key derived from the primary key and the request's values of those headers.
type Entry struct {
	// Status is the response status code, or 0 for a Vary marker.
	Status int
	// Header holds the response header fields to replay (canonical names), including
	// Content-Length. Hop-by-hop fields, Age, X-Cache and fields the upstream marked
	// no-cache/private are not stored.
	Header http.Header
	// Body is the response body.
	Body []byte
	// Vary lists the canonical request header names the response varies on (sorted).
	Vary []string
	// Born is when the response was generated: the time it was received minus its corrected
	// initial age (RFC 9111 §4.2.3: the larger of its Age header and the time since its Date). The
	// Age header of a hit is now minus Born, and the freshness lifetime runs from Born.
	Born time.Time
	// FreshUntil is when the entry stops being fresh.
	FreshUntil time.Time
	// StaleUntil is when the entry may no longer be served stale while it is revalidated. It is
	// not before FreshUntil; equal when stale serving is off. An entry with a validator is stored
	// past it (see RevalidateWindow), to be revalidated with a conditional request.
	StaleUntil time.Time
	// Generation is the generation of the request path (see Cache.Invalidate): the one current
	// when the response's fetch started or, when the path had none, the one created with this
	// entry. The entry is served only while the path's current generation is still this one.
	// Stores must keep it (MarshalBinary does); 0 never matches.
	Generation uint64

	// fields is Header as a slice, built by the package when it creates or decodes an entry, so a
	// hit replays the header without iterating a map. nil for entries built elsewhere.
	fields []field
	nvals  int
}

type field struct {
	name string
	vals []string
}

// index builds e.fields from e.Header. Call before e is shared.
func (e *Entry) index() *Entry {
	e.fields, e.nvals = make([]field, 0, len(e.Header)), 0
	for k, vs := range e.Header {
		e.fields = append(e.fields, field{k, vs})
		e.nvals += len(vs)
	}
	return e
}

// isMarker reports whether e is a Vary marker.
func (e *Entry) isMarker() bool { return e.Status == 0 }

// weight is the approximate number of bytes the entry occupies in memory.
func (e *Entry) weight() int {
	n := 160 + len(e.Body)
	for k, vs := range e.Header {
		n += len(k) + 32
		for _, v := range vs {
			n += len(v) + 16
		}
	}
	for _, v := range e.Vary {
		n += len(v) + 16
	}
	return n
}

// ErrCorruptEntry is returned by Entry.UnmarshalBinary (and by stores, wrapped) when stored bytes
// are not an entry this version can read. The middleware treats such an entry as a miss.
var ErrCorruptEntry = errors.New("cache: corrupt entry")

const entryMagic, entryVersion = 'G', 2

// Decoding bounds: anything above them is corrupt, so a damaged or hostile value cannot make the
// decoder allocate without limit.
const (
	maxFields = 1024
	maxValues = 1024
)

// MarshalBinary encodes e compactly: a magic byte and version, the generation, the status, the
// three times as Unix nanoseconds, the Vary names, the header fields and the body, with unsigned
// varint lengths. Version 2 added the generation; version 1 values no longer decode (they are
// treated as corrupt, that is as misses).
func (e *Entry) MarshalBinary() ([]byte, error) {
	n := 80 + len(e.Body)
	for k, vs := range e.Header {
		n += len(k) + 4
		for _, v := range vs {
			n += len(v) + 4
		}
	}
	b := make([]byte, 0, n)
	b = append(b, entryMagic, entryVersion)
	b = binary.AppendUvarint(b, e.Generation)
	b = binary.AppendUvarint(b, uint64(max(e.Status, 0)))
	b = binary.AppendVarint(b, unixNano(e.Born))
	b = binary.AppendVarint(b, unixNano(e.FreshUntil))
	b = binary.AppendVarint(b, unixNano(e.StaleUntil))
	b = binary.AppendUvarint(b, uint64(len(e.Vary)))
	for _, v := range e.Vary {
		b = appendString(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Header)))
	for k, vs := range e.Header {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(e.Body)))
	return append(b, e.Body...), nil
}

// UnmarshalBinary decodes what MarshalBinary produced. It returns ErrCorruptEntry (wrapped) for
// anything else and never panics.
func (e *Entry) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if len(b) < 2 || b[0] != entryMagic || b[1] != entryVersion {
		return ErrCorruptEntry
	}
	d.b = b[2:]
	gen := d.uvarint()
	status := d.uvarint()
	born, fresh, stale := d.varint(), d.varint(), d.varint()
	var vary []string
	if n := d.count(maxFields); n > 0 {
		vary = make([]string, 0, n)
		for range n {
			vary = append(vary, d.string())
		}
	}
	var h http.Header
	if n := d.count(maxFields); n > 0 {
		h = make(http.Header, n)
		for range n {
			k := d.string()
			nv := d.count(maxValues)
			vs := make([]string, 0, nv)
			for range nv {
				vs = append(vs, d.string())
			}
			h[k] = vs
		}
	}
	body := d.bytes()
	if d.bad || len(d.b) != 0 || status > 999 {
		return ErrCorruptEntry
	}
	*e = Entry{Status: int(status), Header: h, Body: body, Vary: vary,
		Born: fromUnixNano(born), FreshUntil: fromUnixNano(fresh), StaleUntil: fromUnixNano(stale), Generation: gen}
	e.index()
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromUnixNano inverts unixNano: 0 is the zero time.
func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads varint-framed fields; after the first error every read returns a zero value.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 { return readVarint(d, binary.Uvarint) }

func (d *decoder) varint() int64 { return readVarint(d, binary.Varint) }

func readVarint[T int64 | uint64](d *decoder, read func([]byte) (T, int)) T {
	if d.bad {
		return 0
	}
	v, n := read(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count that may be at most limit and at most the number of bytes left (each
// counted item takes at least one byte).
func (d *decoder) count(limit int) int {
	v := d.uvarint()
	if v > uint64(limit) || v > uint64(len(d.b)) {
		d.bad = true
		return 0
	}
	return int(v)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) string() string { return string(d.bytes()) }
