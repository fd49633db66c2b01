package jsonpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// The scanner below walks JSON that encoding/json.Valid has already accepted, so it only needs to
// find where values end; it never allocates and never reads past the slice.

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	i++
	for i < len(b) {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		q := i + j
		bs := 0 // backslashes right before the quote: an odd count escapes it
		for k := q - 1; k >= i && b[k] == '\\'; k-- {
			bs++
		}
		if bs%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
	return len(b)
}

// valueEnd returns the index just past the value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// member is one object member as offsets into the document.
type member struct {
	keyStart, keyEnd, valStart, valEnd int // key offsets include the quotes
}

// nextMember reads the member at b[i] (the opening quote of its key, or the closing brace). It
// returns the member, the index of the next member (or of the closing brace), and false at the
// closing brace.
func nextMember(b []byte, i int) (member, int, bool) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '"' {
		return member{}, i, false
	}
	var m member
	m.keyStart = i
	m.keyEnd = stringEnd(b, i)
	i = skipSpace(b, m.keyEnd) + 1 // ':'
	m.valStart = skipSpace(b, i)
	m.valEnd = valueEnd(b, m.valStart)
	i = skipSpace(b, m.valEnd)
	if i < len(b) && b[i] == ',' {
		i++
	}
	return m, i, true
}

// nextElement reads the array element at b[i] (its first byte, or the closing bracket).
func nextElement(b []byte, i int) (start, end, next int, ok bool) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] == ']' {
		return 0, 0, i, false
	}
	start = i
	end = valueEnd(b, i)
	i = skipSpace(b, end)
	if i < len(b) && b[i] == ',' {
		i++
	}
	return start, end, i, true
}

// rawKey returns the key bytes without quotes and whether they contain escapes.
func rawKey(b []byte, m member) ([]byte, bool) {
	k := b[m.keyStart+1 : m.keyEnd-1]
	for _, c := range k {
		if c == '\\' {
			return k, true
		}
	}
	return k, false
}

// keyString decodes a member's key.
func keyString(b []byte, m member) string {
	k, esc := rawKey(b, m)
	if !esc {
		return string(k)
	}
	var s string
	if json.Unmarshal(b[m.keyStart:m.keyEnd], &s) != nil {
		return string(k)
	}
	return s
}

// ErrInvalid reports a document that is not valid JSON.
var ErrInvalid = errors.New("jsonpath: invalid JSON")

// ErrNotObject reports a document that is valid JSON but not an object.
var ErrNotObject = errors.New("jsonpath: JSON value is not an object")

// Members calls fn for each member of the JSON object doc, in document order, with the decoded key
// and the raw value bytes (a sub-slice of doc). It stops early when fn returns false. It returns
// ErrInvalid or ErrNotObject when doc is not a valid JSON object.
func Members(doc []byte, fn func(key string, value []byte) bool) error {
	if !json.Valid(doc) {
		return ErrInvalid
	}
	i := skipSpace(doc, 0)
	if doc[i] != '{' {
		return ErrNotObject
	}
	for m, next, ok := nextMember(doc, i+1); ok; m, next, ok = nextMember(doc, next) {
		if !fn(keyString(doc, m), doc[m.valStart:m.valEnd]) {
			return nil
		}
	}
	return nil
}

// Lookup returns the raw JSON value at p in doc (the first match when a key repeats). Arrays are
// not traversed: Lookup follows object members only. It returns false when doc is invalid or the
// path does not exist.
func Lookup(doc []byte, p Path) ([]byte, bool) {
	if !json.Valid(doc) {
		return nil, false
	}
	start, end := skipSpace(doc, 0), len(doc)
	for _, seg := range p.Segments {
		if start >= end || doc[start] != '{' {
			return nil, false
		}
		found := false
		for m, next, ok := nextMember(doc, start+1); ok; m, next, ok = nextMember(doc, next) {
			if keyString(doc, m) == seg {
				start, end, found = m.valStart, m.valEnd, true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return doc[start:valueEnd(doc, start)], true
}

// Field is a top-level member to set with SetMembers: Value is raw JSON, or nil to only remove
// the member.
type Field struct {
	Key   string
	Value []byte
}

// SetMembers appends to dst the JSON object doc with every member named by a Field removed and
// the Fields with a non-nil Value appended, in order. Removal covers all occurrences and matches
// keys case-insensitively (Unicode simple folding, as encoding/json does when it fills struct
// fields), so neither a duplicated key nor "USER_ID" can smuggle a second value past a parser
// that keeps the first or the last one. Field keys must be valid UTF-8 and values valid JSON. It returns ErrInvalid or ErrNotObject when doc is not a valid JSON object.
func SetMembers(dst, doc []byte, fields []Field) ([]byte, error) {
	if !json.Valid(doc) {
		return dst, ErrInvalid
	}
	i := skipSpace(doc, 0)
	if doc[i] != '{' {
		return dst, ErrNotObject
	}
	dst = append(dst, '{')
	first := true
	for m, next, ok := nextMember(doc, i+1); ok; m, next, ok = nextMember(doc, next) {
		k, esc := rawKey(doc, m)
		if esc {
			k = []byte(keyString(doc, m))
		}
		if replaced(fields, k) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		dst = append(dst, doc[m.keyStart:m.valEnd]...)
		first = false
	}
	for _, f := range fields {
		if f.Value == nil {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		q, _ := json.Marshal(f.Key)
		dst = append(dst, q...)
		dst = append(dst, ':')
		dst = append(dst, f.Value...)
		first = false
	}
	return append(dst, '}'), nil
}

func replaced(fields []Field, key []byte) bool {
	for _, f := range fields {
		if strings.EqualFold(f.Key, string(key)) {
			return true
		}
	}
	return false
}
