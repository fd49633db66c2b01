package auth

import (
	"fmt"
	"strings"

	"github.com/gatewaykit/gatewaykit"
)

// claimMapper turns a claim set (JWT payload, introspection response) into an Identity.
type claimMapper struct {
	roles  []string // dotted path
	scopes []string
	tier   string
}

func newClaimMapper(c *config) claimMapper {
	return claimMapper{roles: strings.Split(c.rolesClaim, "."), scopes: c.scopeClaims, tier: c.tierClaim}
}

// identity builds the Identity; sub must be a non-empty string.
func (m claimMapper) identity(claims map[string]any, method string) (*gatewaykit.Identity, error) {
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return nil, fmt.Errorf("%w: sub", ErrMissingClaim)
	}
	id := &gatewaykit.Identity{Subject: sub, Method: method, Claims: claims}
	var err error
	if id.Roles, err = stringList(lookupPath(claims, m.roles)); err != nil {
		return nil, fmt.Errorf("%w: roles claim: %w", ErrMalformed, err)
	}
	for _, name := range m.scopes {
		if v, ok := claims[name]; ok {
			if id.Scopes, err = stringList(v); err != nil {
				return nil, fmt.Errorf("%w: scope claim: %w", ErrMalformed, err)
			}
			break
		}
	}
	switch t := claims[m.tier].(type) {
	case nil:
	case string:
		id.Tier = t
	default:
		return nil, fmt.Errorf("%w: tier claim is not a string", ErrMalformed)
	}
	return id, nil
}

// lookupPath walks nested objects along path; nil when absent.
func lookupPath(claims map[string]any, path []string) any {
	var v any = claims
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// stringList accepts an array of strings or a string of space- or comma-separated words.
func stringList(v any) ([]string, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case string:
		return strings.FieldsFunc(t, func(r rune) bool { return r == ' ' || r == ',' }), nil
	case []string:
		return t, nil
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("element of type %T", e)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("value of type %T", v)
	}
}
