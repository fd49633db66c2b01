package auth

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gatewaykit/gatewaykit"
)

// Sentinel errors returned (wrapped) by Authenticate. Callers branch on them with errors.Is. The
// text after "auth: " is the failure class that the default rejection puts in the problem detail;
// it never contains the credential itself.
var (
	// ErrNoCredentials means the request carries no credential for the method. The middleware answers
	// 401 unless the method is Optional, and First tries the next method.
	ErrNoCredentials = errors.New("auth: no credentials")
	// ErrAmbiguous means more than one credential was sent (two Authorization headers, a bearer
	// token and a cookie, ...). Rejected rather than picking one silently.
	ErrAmbiguous = errors.New("auth: more than one credential")
	// ErrTooLarge means the credential exceeds the configured size cap.
	ErrTooLarge = errors.New("auth: credential too large")
	// ErrMalformed means the credential cannot be parsed (segments, base64, JSON, claim types).
	ErrMalformed = errors.New("auth: malformed credential")
	// ErrAlgorithm means the token's alg is not in the allow-list or does not match the key.
	ErrAlgorithm = errors.New("auth: unsupported algorithm")
	// ErrTokenType means the token's type is not accepted: a JWT whose "typ" header is not in the
	// verifier's allowed types (WithAllowedTypes), or absent when a type is required, or an
	// introspection answer whose "token_type" is not in WithAllowedTokenTypes. It keeps tokens of
	// other kinds signed by the same issuer (logout tokens, security event tokens, DPoP proofs) from
	// being accepted as access tokens (RFC 8725 section 3.11).
	ErrTokenType = errors.New("auth: token type not accepted")
	// ErrUnknownKey means no key matches the token's kid (after at most one JWKS refresh).
	ErrUnknownKey = errors.New("auth: unknown signing key")
	// ErrSignature means the signature does not verify.
	ErrSignature = errors.New("auth: invalid signature")
	// ErrExpired means exp is in the past beyond the leeway.
	ErrExpired = errors.New("auth: token expired")
	// ErrNotYetValid means nbf or iat is in the future beyond the leeway.
	ErrNotYetValid = errors.New("auth: token not yet valid")
	// ErrIssuer means iss is not the configured issuer (a missing iss is ErrMissingClaim).
	ErrIssuer = errors.New("auth: wrong issuer")
	// ErrAudience means aud does not name the configured audience (a missing or empty aud is
	// ErrMissingClaim).
	ErrAudience = errors.New("auth: wrong audience")
	// ErrMissingClaim means a required claim (exp, sub or one set by WithRequiredClaims) is absent.
	ErrMissingClaim = errors.New("auth: missing required claim")
	// ErrInvalidCredential means an API key or opaque token is unknown, revoked, expired or inactive.
	ErrInvalidCredential = errors.New("auth: invalid credential")
	// ErrUnavailable means the credential could not be checked because a dependency (key store,
	// introspection endpoint) failed. It is answered with 503 and never lets the request through.
	ErrUnavailable = errors.New("auth: authentication service unavailable")
)

// classes lists the sentinels in the order a rejection is classified by.
var classes = []error{
	ErrUnavailable, ErrAmbiguous, ErrTooLarge, ErrAlgorithm, ErrTokenType, ErrUnknownKey, ErrSignature,
	ErrExpired, ErrNotYetValid, ErrIssuer, ErrAudience, ErrMissingClaim, ErrMalformed,
	ErrInvalidCredential, ErrNoCredentials,
}

// errDeclined marks an error from a method that saw a credential it does not handle (an opaque token
// seen by the JWT method). First then offers the request to the next method.
var errDeclined = errors.New("auth: credential not for this method")

// classOf returns the sentinel that classifies err, or ErrInvalidCredential.
func classOf(err error) error {
	for _, c := range classes {
		if errors.Is(err, c) {
			return c
		}
	}
	return ErrInvalidCredential
}

func detailOf(class error) string { return strings.TrimPrefix(class.Error(), "auth: ") }

// problemFor builds the rejection for an authentication error: 503 for ErrUnavailable, 401 with an
// RFC 6750 challenge otherwise. The challenge carries error="invalid_token" for a credential that was
// sent but is not valid, and no error code when none was sent (RFC 6750 section 3.1).
func problemFor(err error) *gatewaykit.Problem {
	c := classOf(err)
	if c == ErrUnavailable {
		return gatewaykit.NewProblem(http.StatusServiceUnavailable, detailOf(c)).WithRetryAfter(0).WithErr(err)
	}
	p := gatewaykit.NewProblem(http.StatusUnauthorized, detailOf(c)).WithErr(err)
	if c == ErrNoCredentials {
		return p.WithHeader("WWW-Authenticate", "Bearer")
	}
	return p.WithHeader("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+detailOf(c)+`"`)
}

// forbidden builds the 403 problem of the authorization middlewares.
func forbidden(detail string) *gatewaykit.Problem {
	return gatewaykit.NewProblem(http.StatusForbidden, detail)
}
