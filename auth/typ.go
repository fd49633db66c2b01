package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// NoType, listed in WithAllowedTypes, accepts a JWT without a "typ" header. A "typ" header that is
// present but empty is never accepted.
const NoType = ""

// typPolicy is a JWT verifier's explicit typing policy (RFC 8725 section 3.11): which "typ" header
// values it accepts. It is immutable once built and read concurrently.
type typPolicy struct {
	absent bool     // a token without "typ" is accepted
	types  []string // accepted values, lower case, in the short form of normType
}

// defaultTypPolicy accepts what access tokens of common IdPs carry: no "typ", "JWT", or the
// RFC 9068 access token type "at+jwt". Every other type (logout+jwt, secevent+jwt, dpop+jwt,
// token-introspection+jwt, JOSE, ...) names a JWT that is not an access token and is rejected.
func defaultTypPolicy() typPolicy { return typPolicy{absent: true, types: []string{"jwt", "at+jwt"}} }

// check applies the policy to a parsed JOSE header. It does not allocate when the token passes.
func (p *typPolicy) check(header map[string]any) error {
	v, present := header["typ"]
	if !present {
		if p.absent {
			return nil
		}
		return fmt.Errorf("%w: typ header required", ErrTokenType)
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("%w: typ is not a string", ErrMalformed)
	}
	s = normType(s)
	for _, t := range p.types {
		if equalFoldASCII(s, t) {
			return nil
		}
	}
	return fmt.Errorf("%w: typ not allowed", ErrTokenType)
}

// equalFoldASCII reports whether a and b are equal under ASCII case folding, the case
// insensitivity of media types. strings.EqualFold folds Unicode too, so it would take the Kelvin
// sign U+212A for "k" and the long s U+017F for "s": "\u212Ab+jwt" is not "kb+jwt".
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// normType returns the short form of a "typ" value: RFC 7515 section 4.1.9 has a recipient treat
// a value without '/' as if "application/" were prepended, so "application/at+jwt" and "at+jwt"
// are the same type; a value with another '/' ("text/plain") is kept whole. Media types compare
// case-insensitively; parameters (";...") are not understood and so never match.
func normType(s string) string {
	const prefix = "application/"
	if len(s) > len(prefix) && equalFoldASCII(s[:len(prefix)], prefix) && !strings.Contains(s[len(prefix):], "/") {
		return s[len(prefix):]
	}
	return s
}

// WithAllowedTypes sets the JWT "typ" header values the verifier accepts (explicit typing, RFC 8725
// section 3.11; RFC 9068 section 4). Values compare case-insensitively in ASCII (no Unicode
// case folding), and the "application/" prefix is optional on both sides (RFC 7515 section
// 4.1.9): "at+jwt" also accepts "application/AT+JWT". A token without "typ" is accepted only when
// NoType is listed, so
// WithAllowedTypes("at+jwt") requires RFC 9068 access tokens and WithAllowedTypes(auth.NoType,
// "at+jwt") also lets untyped tokens through. A "typ" that is not a string is ErrMalformed; one
// not accepted (also an empty string) is ErrTokenType, checked before any key lookup.
//
// Default for NewJWT: NoType, "JWT" and "at+jwt"; every other type is rejected, in particular the
// JWTs an IdP signs for other purposes with the same keys: "logout+jwt" (OpenID Connect
// back-channel logout), "secevent+jwt" (RFC 8417), "dpop+jwt" (RFC 9449 proofs),
// "token-introspection+jwt" (RFC 9701), generic "JOSE". An OpenID Connect ID token usually carries
// "JWT" or no typ and cannot be told from an access token by its type: the audience check
// (WithAudience) is what keeps ID tokens out. Default for the ID token verifier of NewLogin (via
// LoginVerifierOptions): NoType and "JWT" only. Applies to NewJWT.
func WithAllowedTypes(types ...string) Option {
	return opt("WithAllowedTypes", sJWT, func(c *config) error {
		if len(types) == 0 {
			return errors.New("no type (omit the option for the default policy)")
		}
		p := typPolicy{}
		for _, t := range types {
			if t == NoType {
				p.absent = true
				continue
			}
			n := normType(t)
			typ, sub, hasSlash := strings.Cut(n, "/")
			if typ == "" || !validToken(typ) || (hasSlash && (sub == "" || !validToken(sub))) {
				return fmt.Errorf("invalid media type %q", t)
			}
			p.types = append(p.types, strings.ToLower(n))
		}
		slices.Sort(p.types)
		p.types = slices.Compact(p.types)
		c.types, c.typesSet = p, true
		return nil
	})
}
