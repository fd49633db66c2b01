package jsonpath

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Spec lists the shaping rules of one client variant. Every path is parsed with Parse.
type Spec struct {
	// Allow lists the fields to keep; everything else is dropped. A path keeps the whole subtree
	// it names ("user" keeps all of user; "user.id" keeps user with only id). Empty means keep
	// everything not denied. With an allow-list, an object or array that holds only deny, rename
	// or role rules and keeps nothing is left out, so no empty skeleton reveals it.
	Allow []string
	// Deny lists fields to remove, applied after Allow (so Allow "user" with Deny "user.password"
	// keeps user without its password).
	Deny []string
	// Rename maps a path to a new member name for its last segment ("user.avatar_url" ->
	// "avatar"). A renamed member replaces a member that already has the new name.
	Rename map[string]string
	// Restrict lists fields visible only to callers holding one of the roles; for those callers
	// the fields are shown even when Allow would drop them. Deny wins over Restrict.
	Restrict []Restriction
}

// Restriction makes fields visible only to the listed roles.
type Restriction struct {
	Roles []string
	Paths []string
}

// Shaper applies a compiled Spec to JSON documents. It is immutable and safe for concurrent use.
type Shaper struct {
	root      *node
	keepAll   bool // no allow-list
	identity  bool // no rules at all
	roleRules bool
}

type node struct {
	children []child
	keep     bool     // allowed: keep the whole subtree (deeper rules still apply)
	deny     bool     // removed
	roles    []string // visible only to these roles (when non-empty)
	rename   []byte   // quoted new name, or nil
	renames  int      // number of children with a rename (for shadowing)
	// allowPath: this node or a descendant is allowed for everyone (keep without roles), so the
	// container is shown even when nothing inside it survives.
	allowPath bool
}

func (n *node) markAllowPaths() bool {
	n.allowPath = n.keep && len(n.roles) == 0
	for _, c := range n.children {
		if c.n.markAllowPaths() {
			n.allowPath = true
		}
	}
	return n.allowPath
}

type child struct {
	name string
	n    *node
}

func (n *node) get(name []byte) *node {
	for i := range n.children {
		if n.children[i].name == string(name) {
			return n.children[i].n
		}
	}
	return nil
}

func (n *node) getOrAdd(name string) *node {
	for i := range n.children {
		if n.children[i].name == name {
			return n.children[i].n
		}
	}
	c := &node{}
	n.children = append(n.children, child{name, c})
	return c
}

func (s *Shaper) add(text string, what string) (*node, error) {
	p, err := Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s path: %w", what, err)
	}
	n := s.root
	for _, seg := range p.Segments {
		n = n.getOrAdd(seg)
	}
	return n, nil
}

// Compile validates spec and builds its Shaper. Errors name the offending path.
func Compile(spec Spec) (*Shaper, error) {
	s := &Shaper{root: &node{}, keepAll: len(spec.Allow) == 0}
	s.identity = len(spec.Allow) == 0 && len(spec.Deny) == 0 && len(spec.Rename) == 0 && len(spec.Restrict) == 0
	for _, a := range spec.Allow {
		n, err := s.add(a, "allow")
		if err != nil {
			return nil, err
		}
		n.keep = true
	}
	for _, d := range spec.Deny {
		n, err := s.add(d, "deny")
		if err != nil {
			return nil, err
		}
		n.deny = true
	}
	for _, r := range spec.Restrict {
		if len(r.Roles) == 0 {
			return nil, fmt.Errorf("restricted paths %q name no role", r.Paths)
		}
		if len(r.Paths) == 0 {
			return nil, fmt.Errorf("restriction for roles %q names no path", r.Roles)
		}
		for _, role := range r.Roles {
			if role == "" {
				return nil, fmt.Errorf("restricted paths %q: empty role", r.Paths)
			}
		}
		for _, p := range r.Paths {
			n, err := s.add(p, "restricted")
			if err != nil {
				return nil, err
			}
			n.keep = true
			n.roles = append(n.roles, r.Roles...)
			s.roleRules = true
		}
	}
	// Renames: sorted for deterministic validation errors.
	from := make([]string, 0, len(spec.Rename))
	for k := range spec.Rename {
		from = append(from, k)
	}
	slices.Sort(from)
	targets := map[*node]map[string]string{}
	for _, f := range from {
		to := spec.Rename[f]
		if to == "" {
			return nil, fmt.Errorf("rename path %q: empty new name", f)
		}
		p, err := Parse(f)
		if err != nil {
			return nil, fmt.Errorf("rename path: %w", err)
		}
		parent := s.root
		for _, seg := range p.Segments[:len(p.Segments)-1] {
			parent = parent.getOrAdd(seg)
		}
		if targets[parent] == nil {
			targets[parent] = map[string]string{}
		}
		if prev, dup := targets[parent][to]; dup {
			return nil, fmt.Errorf("rename paths %q and %q both become %q", prev, f, to)
		}
		targets[parent][to] = f
		n := parent.getOrAdd(p.Segments[len(p.Segments)-1])
		q, _ := json.Marshal(to)
		n.rename = q
		parent.renames++
	}
	s.root.markAllowPaths()
	s.root.allowPath = true // the document itself is always answered
	return s, nil
}

// Identity reports whether the Shaper has no rules (Shape would only copy its input).
func (s *Shaper) Identity() bool { return s.identity }

// Shape appends the shaped form of the JSON document src to dst and returns it. hasRole reports
// whether the caller holds a role (nil: no roles). It returns ErrInvalid when src is not valid
// JSON. Shaped output is valid JSON; member order is preserved; untouched values are copied
// byte for byte.
func (s *Shaper) Shape(dst, src []byte, hasRole func(string) bool) ([]byte, error) {
	if !json.Valid(src) {
		return dst, ErrInvalid
	}
	start := skipSpace(src, 0)
	end := valueEnd(src, start)
	if s.identity {
		return append(dst, src[start:end]...), nil
	}
	sh := shaping{src: src, hasRole: hasRole}
	out, ok := sh.value(dst, start, end, s.root, s.keepAll)
	if !ok {
		out = append(out, "null"...)
	}
	return out, nil
}

type shaping struct {
	src     []byte
	hasRole func(string) bool
}

func (sh *shaping) visible(n *node) bool {
	if len(n.roles) == 0 {
		return true
	}
	if sh.hasRole == nil {
		return false
	}
	for _, r := range n.roles {
		if sh.hasRole(r) {
			return true
		}
	}
	return false
}

// value appends the shaped value src[start:end] at node n. keep reports whether the enclosing
// subtree is kept as a whole. It returns false (and dst unchanged) when the value is dropped.
func (sh *shaping) value(dst []byte, start, end int, n *node, keep bool) ([]byte, bool) {
	keep = keep || n.keep
	c := sh.src[start]
	if len(n.children) == 0 || (c != '{' && c != '[') {
		if keep {
			return append(dst, sh.src[start:end]...), true
		}
		return dst, false // rules below a scalar have nothing to select
	}
	mark := len(dst)
	var kept int
	if c == '{' {
		dst, kept = sh.object(dst, start, n, keep)
	} else {
		dst, kept = sh.array(dst, start, n, keep)
	}
	if kept == 0 && !keep && !n.allowPath {
		// A container on no allow path (only deny, rename or role rules below it) that kept
		// nothing: leave it out rather than reveal an empty skeleton.
		return dst[:mark], false
	}
	return dst, true
}

func (sh *shaping) array(dst []byte, start int, n *node, keep bool) ([]byte, int) {
	dst = append(dst, '[')
	first := true
	count := 0
	for es, ee, next, ok := nextElement(sh.src, start+1); ok; es, ee, next, ok = nextElement(sh.src, next) {
		mark := len(dst)
		if !first {
			dst = append(dst, ',')
		}
		var kept bool
		if dst, kept = sh.value(dst, es, ee, n, keep); kept {
			first = false
			count++
		} else {
			dst = dst[:mark]
		}
	}
	return append(dst, ']'), count
}

func (sh *shaping) object(dst []byte, start int, n *node, keep bool) ([]byte, int) {
	src := sh.src
	var shadow []string // new names of renamed members present in this object
	if n.renames > 0 {
		for m, next, ok := nextMember(src, start+1); ok; m, next, ok = nextMember(src, next) {
			if c := n.get(sh.key(m)); c != nil && c.rename != nil && !c.deny && sh.visible(c) &&
				(keep || c.keep || len(c.children) > 0) {
				shadow = append(shadow, string(c.rename[1:len(c.rename)-1]))
			}
		}
	}
	dst = append(dst, '{')
	first := true
	count := 0
	for m, next, ok := nextMember(src, start+1); ok; m, next, ok = nextMember(src, next) {
		key := sh.key(m)
		c := n.get(key)
		if c == nil {
			if keep && !shadowed(shadow, key) {
				if !first {
					dst = append(dst, ',')
				}
				dst = append(dst, src[m.keyStart:m.valEnd]...)
				first = false
				count++
			}
			continue
		}
		if c.deny || !sh.visible(c) || (c.rename == nil && shadowed(shadow, key)) {
			continue
		}
		mark := len(dst)
		if !first {
			dst = append(dst, ',')
		}
		if c.rename != nil {
			dst = append(dst, c.rename...)
		} else {
			dst = append(dst, src[m.keyStart:m.keyEnd]...)
		}
		dst = append(dst, ':')
		var kept bool
		if dst, kept = sh.value(dst, m.valStart, m.valEnd, c, keep); kept {
			first = false
			count++
		} else {
			dst = dst[:mark]
		}
	}
	return append(dst, '}'), count
}

// key returns the member's key for lookup; escaped keys are decoded (allocating, rare).
func (sh *shaping) key(m member) []byte {
	k, esc := rawKey(sh.src, m)
	if esc {
		return []byte(keyString(sh.src, m))
	}
	return k
}

func shadowed(shadow []string, key []byte) bool {
	for _, s := range shadow {
		if s == string(key) {
			return true
		}
	}
	return false
}
