package bff

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/metric"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/internal/jsonpath"
)

// VariantOption configures one Variant: its selectors (PathPrefix, Header, When) and its shaping
// rules (Allow, Deny, Rename, VisibleTo).
type VariantOption func(*variantConfig) error

type variantConfig struct {
	prefixes []string
	headers  []headerMatch
	funcs    []func(*http.Request) bool
	spec     jsonpath.Spec
}

type headerMatch struct{ name, value string }

type variant struct {
	name     string
	prefixes []string
	headers  []headerMatch
	funcs    []func(*http.Request) bool
	shaper   *jsonpath.Shaper
	attrs    map[string]metric.MeasurementOption
	nameAttr metric.MeasurementOption
}

// Variant defines a client variant (such as "mobile", "web", "admin"). A request matches the
// variant when any of its selectors matches. A variant without shaping rules passes responses
// through untouched ("web gets everything").
func Variant(name string, opts ...VariantOption) Option {
	return func(c *config) error {
		if name == "" {
			return errors.New("bff: variant name is empty")
		}
		vc := variantConfig{spec: jsonpath.Spec{Rename: map[string]string{}}}
		for _, o := range opts {
			if o == nil {
				return fmt.Errorf("bff: variant %q: nil option", name)
			}
			if err := o(&vc); err != nil {
				return fmt.Errorf("bff: variant %q: %w", name, err)
			}
		}
		sh, err := jsonpath.Compile(vc.spec)
		if err != nil {
			return fmt.Errorf("bff: variant %q: %w", name, err)
		}
		c.variants = append(c.variants, &variant{name: name, prefixes: vc.prefixes, headers: vc.headers, funcs: vc.funcs, shaper: sh})
		return nil
	}
}

// PathPrefix selects the variant for request paths equal to prefix or below it ("/mobile/api"
// matches "/mobile/api" and "/mobile/api/users/7", not "/mobile/apix"). The prefix is stripped
// before the request reaches the next handler ("/mobile/api/users/7" -> "/users/7"), from both
// the path and its escaped form.
func PathPrefix(prefix string) VariantOption {
	return func(vc *variantConfig) error {
		if !strings.HasPrefix(prefix, "/") || len(prefix) < 2 || strings.HasSuffix(prefix, "/") {
			return fmt.Errorf("path prefix %q must start with '/', not end with '/' and not be \"/\"", prefix)
		}
		vc.prefixes = append(vc.prefixes, prefix)
		return nil
	}
}

// Header selects the variant when the request header name has the value (case-insensitive), for
// example Header("X-Client-Type", "mobile"). Responses of a BFF with header selectors carry
// "Vary: <name>". The header is client-controlled: a variant is presentation, not authorization;
// use VisibleTo for fields a role must hold.
func Header(name, value string) VariantOption {
	return func(vc *variantConfig) error {
		n, err := canonical(name)
		if err != nil {
			return err
		}
		if value == "" {
			return fmt.Errorf("header %s: empty value", n)
		}
		vc.headers = append(vc.headers, headerMatch{n, value})
		return nil
	}
}

// When selects the variant when f reports true. f must be safe for concurrent use.
func When(f func(*http.Request) bool) VariantOption {
	return func(vc *variantConfig) error {
		if f == nil {
			return errors.New("nil selector func")
		}
		vc.funcs = append(vc.funcs, f)
		return nil
	}
}

// Allow keeps only the listed field paths ("id", "user.name", "orders[].total"; see package
// internal/jsonpath for the syntax); a path keeps the whole subtree it names. Arrays are traversed
// transparently. Without Allow every field not denied is kept.
func Allow(paths ...string) VariantOption {
	return func(vc *variantConfig) error {
		if len(paths) == 0 {
			return errors.New("Allow: no paths")
		}
		vc.spec.Allow = append(vc.spec.Allow, paths...)
		return nil
	}
}

// Deny removes the listed field paths (applied after Allow).
func Deny(paths ...string) VariantOption {
	return func(vc *variantConfig) error {
		if len(paths) == 0 {
			return errors.New("Deny: no paths")
		}
		vc.spec.Deny = append(vc.spec.Deny, paths...)
		return nil
	}
}

// Rename renames the member at path to newName ("user.avatar_url" -> "avatar"); the renamed member
// replaces one already named newName. Allow and Deny use the original names.
func Rename(path, newName string) VariantOption {
	return func(vc *variantConfig) error {
		if _, dup := vc.spec.Rename[path]; dup {
			return fmt.Errorf("path %q renamed twice", path)
		}
		vc.spec.Rename[path] = newName
		return nil
	}
}

// VisibleTo makes the field paths visible only to callers whose gatewaykit.Identity holds the
// role; for them the fields are shown even if Allow would drop them. Anonymous callers never see
// them. Deny wins over VisibleTo.
func VisibleTo(role string, paths ...string) VariantOption {
	return func(vc *variantConfig) error {
		vc.spec.Restrict = append(vc.spec.Restrict, jsonpath.Restriction{Roles: []string{role}, Paths: paths})
		return nil
	}
}

// choose returns the matching variant and, when a prefix matched, the path without it.
func (b *BFF) choose(r *http.Request) (v *variant, prefix string) {
	for _, v := range b.variants {
		for _, p := range v.prefixes {
			if _, ok := stripPrefix(r.URL.Path, p); ok {
				return v, p
			}
		}
		for _, h := range v.headers {
			for _, got := range r.Header[h.name] {
				if strings.EqualFold(strings.TrimSpace(got), h.value) {
					return v, ""
				}
			}
		}
		for _, f := range v.funcs {
			if f(r) {
				return v, ""
			}
		}
	}
	return b.def, ""
}

// strip removes prefix from the path of r, a copy owned by this request.
func strip(r *http.Request, prefix string) {
	u := *r.URL
	u.Path, _ = stripPrefix(u.Path, prefix)
	if u.RawPath != "" {
		// The prefix has no escapes, so it either starts the raw path too or the raw path is
		// inconsistent with the path: then drop it.
		if rawRest, ok := stripPrefix(u.RawPath, prefix); ok {
			u.RawPath = rawRest
		} else {
			u.RawPath = ""
		}
	}
	r.URL = &u
	r.RequestURI = u.RequestURI()
}

func stripPrefix(path, prefix string) (string, bool) {
	if !strings.HasPrefix(path, prefix) {
		return "", false
	}
	rest := path[len(prefix):]
	if rest == "" {
		return "/", true
	}
	if rest[0] != '/' {
		return "", false
	}
	return rest, true
}

func hasRoleFunc(r *http.Request) func(string) bool {
	id, ok := gatewaykit.IdentityFrom(r.Context())
	if !ok {
		return nil
	}
	return id.HasRole
}
