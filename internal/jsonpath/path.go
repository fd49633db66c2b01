package jsonpath

import (
	"errors"
	"fmt"
	"strings"
)

// MaxPathLen is the longest path Parse accepts, in bytes.
const MaxPathLen = 1024

// MaxDepth is the most segments a path may have.
const MaxDepth = 32

// Path is a parsed field path such as "user.id" or "orders[].total". Arrays are traversed
// transparently when a path is applied, so "[]" is a readability marker: "orders[].total" and
// "orders.total" select the same fields. Array records which segments were marked.
type Path struct {
	// Segments are the object member names, outermost first. Never empty for a parsed Path.
	Segments []string
	// Array[i] is the number of "[]" markers after Segments[i]; RootArray is the number before
	// the first segment (a document that is itself an array: "[].id").
	Array     []int
	RootArray int
}

// Parse parses a field path: names separated by '.', each optionally followed by "[]" (one or
// more), optionally preceded by "[]" for a top-level array. A backslash escapes the next
// character, so `a\.b` is one member named "a.b". Names are non-empty. Parse never panics and is
// safe for concurrent use.
func Parse(s string) (Path, error) {
	if s == "" {
		return Path{}, errors.New("empty path")
	}
	if len(s) > MaxPathLen {
		return Path{}, fmt.Errorf("path longer than %d bytes", MaxPathLen)
	}
	var p Path
	i := 0
	for strings.HasPrefix(s[i:], "[]") {
		p.RootArray++
		i += 2
	}
	if i == len(s) {
		return Path{}, fmt.Errorf("path %q names no field", s)
	}
	if p.RootArray > 0 {
		if s[i] != '.' {
			return Path{}, fmt.Errorf("path %q: expected '.' after \"[]\" at offset %d", s, i)
		}
		i++
	}
	for {
		var name strings.Builder
		for i < len(s) && s[i] != '.' && s[i] != '[' {
			switch s[i] {
			case ']':
				return Path{}, fmt.Errorf("path %q: unexpected ']' at offset %d", s, i)
			case '\\':
				if i+1 == len(s) {
					return Path{}, fmt.Errorf("path %q: trailing backslash", s)
				}
				i++
			}
			name.WriteByte(s[i])
			i++
		}
		if name.Len() == 0 {
			return Path{}, fmt.Errorf("path %q: empty name at offset %d", s, i)
		}
		arr := 0
		for i < len(s) && s[i] == '[' {
			if i+1 == len(s) || s[i+1] != ']' {
				return Path{}, fmt.Errorf("path %q: '[' must be followed by ']' at offset %d", s, i)
			}
			arr++
			i += 2
		}
		p.Segments = append(p.Segments, name.String())
		p.Array = append(p.Array, arr)
		if len(p.Segments) > MaxDepth {
			return Path{}, fmt.Errorf("path %q deeper than %d segments", s, MaxDepth)
		}
		if i == len(s) {
			return p, nil
		}
		if s[i] != '.' {
			return Path{}, fmt.Errorf("path %q: expected '.' at offset %d", s, i)
		}
		i++
	}
}

// String returns the canonical text of p; Parse(p.String()) returns an equal Path.
func (p Path) String() string {
	var b strings.Builder
	for range p.RootArray {
		b.WriteString("[]")
	}
	for i, seg := range p.Segments {
		if i > 0 || p.RootArray > 0 {
			b.WriteByte('.')
		}
		for j := 0; j < len(seg); j++ {
			switch seg[j] {
			case '.', '[', ']', '\\':
				b.WriteByte('\\')
			}
			b.WriteByte(seg[j])
		}
		if i < len(p.Array) {
			for range p.Array[i] {
				b.WriteString("[]")
			}
		}
	}
	return b.String()
}

// HasArray reports whether p marks any array ("[]").
func (p Path) HasArray() bool {
	if p.RootArray > 0 {
		return true
	}
	for _, n := range p.Array {
		if n > 0 {
			return true
		}
	}
	return false
}
