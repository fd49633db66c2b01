package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// ClientCredentials is the gateway's own OAuth 2.0 client (the client credentials grant,
// RFC 6749 section 4.4, with golang.org/x/oauth2/clientcredentials): its Transport adds the
// gateway's access token to outgoing requests (to upstreams or aggregate parts). The token is
// fetched once, shared by all requests and cached until shortly (10 s) before it expires;
// concurrent requests wait for one fetch. It is safe for concurrent use; call Close to drop idle
// connections of the default token client.
type ClientCredentials struct {
	src       oauth2.TokenSource
	closeHC   func()
	closeOnce sync.Once
}

// ClientCredentialsOption configures NewClientCredentials.
type ClientCredentialsOption func(*ccConfig) error

type ccConfig struct {
	scopes   []string
	params   url.Values
	hc       *http.Client
	insecure bool
	basic    bool
}

// WithTokenScopes sets the scopes requested with the token. Default: none (the provider's default).
func WithTokenScopes(scopes ...string) ClientCredentialsOption {
	return func(c *ccConfig) error {
		for _, s := range scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n") {
				return fmt.Errorf("auth: WithTokenScopes: invalid scope %q", s)
			}
		}
		c.scopes = slices.Clone(scopes)
		return nil
	}
}

// WithTokenParams adds parameters to the token request (audience, resource, ...).
func WithTokenParams(params url.Values) ClientCredentialsOption {
	return func(c *ccConfig) error {
		for _, k := range []string{"grant_type", "client_id", "client_secret", "scope"} {
			if params.Has(k) {
				return fmt.Errorf("auth: WithTokenParams: parameter %q cannot be set", k)
			}
		}
		c.params = params
		return nil
	}
}

// WithTokenHTTPClient sets the client used for token requests. Default: a client with a 5 s
// timeout and its own connection pool.
func WithTokenHTTPClient(hc *http.Client) ClientCredentialsOption {
	return func(c *ccConfig) error {
		if hc == nil {
			return errors.New("auth: WithTokenHTTPClient: nil client")
		}
		c.hc = hc
		return nil
	}
}

// WithTokenBasicAuth sends the client credentials with HTTP Basic authentication only. Default:
// Basic first, form parameters when the provider refuses Basic (auto-detected by x/oauth2).
func WithTokenBasicAuth() ClientCredentialsOption {
	return func(c *ccConfig) error { c.basic = true; return nil }
}

// AllowInsecureTokenURL permits an http:// token URL (loopback demos and tests). Default: https.
func AllowInsecureTokenURL() ClientCredentialsOption {
	return func(c *ccConfig) error { c.insecure = true; return nil }
}

// NewClientCredentials returns the gateway's client for tokenURL (for example the token_endpoint
// of the provider's discovery document) with the given client ID and secret.
func NewClientCredentials(tokenURL, clientID, clientSecret string, opts ...ClientCredentialsOption) (*ClientCredentials, error) {
	c := &ccConfig{}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("auth: NewClientCredentials: nil option")
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if err := checkURL(tokenURL, c.insecure); err != nil {
		return nil, fmt.Errorf("auth: NewClientCredentials: token URL: %w", err)
	}
	if clientID == "" || clientSecret == "" {
		return nil, errors.New("auth: NewClientCredentials: client ID and secret are required")
	}
	cc := &ClientCredentials{closeHC: func() {}}
	if c.hc == nil {
		var cfg config
		cfg.fetchTimeout, cfg.allowInsecure = 5*time.Second, c.insecure
		c.hc, cc.closeHC = newHTTPClient(&cfg)
	}
	conf := &clientcredentials.Config{
		ClientID: clientID, ClientSecret: clientSecret, TokenURL: tokenURL, Scopes: c.scopes, EndpointParams: c.params,
	}
	if c.basic {
		conf.AuthStyle = oauth2.AuthStyleInHeader
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, c.hc)
	cc.src = conf.TokenSource(ctx) // a ReuseTokenSource: cached until expiry, one fetch at a time
	return cc, nil
}

// Token returns the current access token, fetching a new one when the cached one is about to
// expire.
func (cc *ClientCredentials) Token() (*oauth2.Token, error) { return cc.src.Token() }

// Transport returns an http.RoundTripper that sends each request over base (nil means
// http.DefaultTransport) with Authorization: Bearer and the gateway's token, replacing any
// Authorization header of the request. A token that cannot be obtained fails the request with an
// error (an upstream call the caller answers with 502), never an unauthenticated request.
func (cc *ClientCredentials) Transport(base http.RoundTripper) http.RoundTripper {
	return &oauth2.Transport{Source: cc.src, Base: base}
}

// Client returns an *http.Client over Transport(base).
func (cc *ClientCredentials) Client(base http.RoundTripper) *http.Client {
	return &http.Client{Transport: cc.Transport(base)}
}

// Close closes idle connections of the default token client. Idempotent.
func (cc *ClientCredentials) Close() error {
	cc.closeOnce.Do(cc.closeHC)
	return nil
}
