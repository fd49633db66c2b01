package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/MicahParks/jwkset"
	jwtlib "github.com/golang-jwt/jwt/v5"
)

// Algorithms this package verifies. "none" is never accepted.
var (
	publicKeyAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	hmacAlgs      = []string{"HS256", "HS384", "HS512"}
)

// minRSABits is the smallest RSA modulus accepted for verification.
const minRSABits = 2048

// verKey is one verification key with its JWK metadata.
type verKey struct {
	kid string
	alg string // "" when the JWK does not pin one
	key crypto.PublicKey
}

// keySet is an immutable set of verification keys.
type keySet struct {
	byKID map[string][]*verKey
	all   []*verKey
}

func newKeySet(keys []*verKey) *keySet {
	s := &keySet{byKID: make(map[string][]*verKey, len(keys)), all: keys}
	for _, k := range keys {
		s.byKID[k.kid] = append(s.byKID[k.kid], k)
	}
	return s
}

// lost reports whether some key of s is missing from next (a key was removed or replaced).
func (s *keySet) lost(next *keySet) bool {
	if s == nil {
		return false
	}
	for _, k := range s.all {
		if !slices.ContainsFunc(next.byKID[k.kid], func(n *verKey) bool { return n.alg == k.alg && keyEqual(n.key, k.key) }) {
			return true
		}
	}
	return false
}

func keyEqual(a, b crypto.PublicKey) bool {
	if e, ok := a.(interface{ Equal(crypto.PublicKey) bool }); ok {
		return e.Equal(b)
	}
	return false
}

// compatible reports whether key k may verify a token signed with alg: the JWK's alg (when set)
// must be alg and the key type and curve must be the algorithm's.
func compatible(alg string, k *verKey) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	return keyFits(alg, k.key)
}

func keyFits(alg string, key crypto.PublicKey) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		_, ok := key.(*rsa.PublicKey)
		return ok
	case "ES256":
		return curveIs(key, elliptic.P256())
	case "ES384":
		return curveIs(key, elliptic.P384())
	case "ES512":
		return curveIs(key, elliptic.P521())
	case "EdDSA":
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

func curveIs(key crypto.PublicKey, c elliptic.Curve) bool {
	k, ok := key.(*ecdsa.PublicKey)
	return ok && k.Curve == c
}

// lookup returns the key (or key set, for a token without kid) to verify a token with alg and kid.
// found is false when no key carries the kid (a JWKS refresh may help); err is set when keys exist
// but none fits the algorithm.
func (s *keySet) lookup(alg, kid string, hasKID bool) (key any, found bool, err error) {
	if s == nil {
		return nil, false, nil
	}
	if hasKID {
		cands := s.byKID[kid]
		if len(cands) == 0 {
			return nil, false, nil
		}
		for _, k := range cands {
			if compatible(alg, k) {
				return k.key, true, nil
			}
		}
		return nil, true, fmt.Errorf("%w: key %q does not fit %s", ErrAlgorithm, kid, alg)
	}
	var set jwtlib.VerificationKeySet
	for _, k := range s.all {
		if compatible(alg, k) {
			set.Keys = append(set.Keys, k.key)
		}
	}
	if len(set.Keys) == 0 {
		return nil, false, nil
	}
	if len(set.Keys) == 1 {
		return set.Keys[0], true, nil
	}
	return set, true, nil
}

// checkPublicKey validates a verification key's type and strength; it accepts a crypto.Signer
// (private key) and keeps its public half.
func checkPublicKey(key any) (crypto.PublicKey, error) {
	if s, ok := key.(crypto.Signer); ok {
		key = s.Public()
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key shorter than %d bits", minRSABits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return nil, errors.New("unsupported EC curve")
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key size")
		}
	default:
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	return key, nil
}

// parseJWKS parses a JWK Set document. Keys that are not signature keys (use other than "sig", or
// key_ops without "verify"), symmetric keys, keys whose alg is not a public-key algorithm of this
// package, and keys that do not parse are skipped and counted. An empty result is an error.
func parseJWKS(body []byte) (keys []*verKey, skipped int, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, 0, fmt.Errorf("JWKS: %w", err)
	}
	for _, raw := range doc.Keys {
		var m jwkset.JWKMarshal
		if json.Unmarshal(raw, &m) != nil || m.KTY == jwkset.KtyOct || (m.USE != "" && m.USE != jwkset.UseSig) ||
			(len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, "verify")) ||
			(m.ALG != "" && !slices.Contains(publicKeyAlgs, string(m.ALG))) {
			skipped++
			continue
		}
		m.D, m.P, m.Q, m.DP, m.DQ, m.QI, m.OTH, m.K = "", "", "", "", "", "", nil, "" // public parts only
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			skipped++
			continue
		}
		pub, err := checkPublicKey(jwk.Key())
		if err != nil || (m.ALG != "" && !keyFits(string(m.ALG), pub)) {
			skipped++
			continue
		}
		keys = append(keys, &verKey{kid: m.KID, alg: string(m.ALG), key: pub})
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("JWKS: no usable signature key (%d skipped)", skipped)
	}
	return keys, skipped, nil
}
