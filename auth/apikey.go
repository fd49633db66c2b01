package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatewaykit/gatewaykit"
)

// API keys have the form "gk_<id>_<secret>": a 16-hex-digit public ID (for revocation, rotation
// and logs) and 256 random bits. Only the SHA-256 of the whole key is stored; a random 256-bit
// secret needs no salt or slow hash to resist guessing.
const (
	apiKeyPrefix   = "gk_"
	apiKeyIDLen    = 16
	apiKeySecret   = 43 // base64url of 32 bytes
	apiKeyLen      = len(apiKeyPrefix) + apiKeyIDLen + 1 + apiKeySecret
	maxAPIKeyInput = 256
)

// ErrKeyNotFound is returned by a KeyStore for an unknown key ID.
var ErrKeyNotFound = errors.New("auth: API key not found")

// ErrKeyChanged is returned by ConditionalKeyStore.Update when the record exists but no longer
// holds what the caller read (another Rotate or a direct store write landed in between).
var ErrKeyChanged = errors.New("auth: API key record changed")

// KeyInfo is the metadata an API key carries into the Identity. It is a plain value; Create copies
// its slices.
type KeyInfo struct {
	// Subject is the key's owner; it becomes Identity.Subject. Required.
	Subject string `json:"sub"`
	// Tier is the owner's plan ("free", "premium", ...). Optional.
	Tier string `json:"tier,omitempty"`
	// Roles and Scopes become Identity.Roles and Identity.Scopes.
	Roles  []string `json:"roles,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
	// ExpiresAt ends the key's validity; zero means no expiry.
	ExpiresAt time.Time `json:"exp,omitzero"`
}

// StoredKey is what a KeyStore keeps for one key: never the key itself, only its SHA-256. It is a
// plain value passed between APIKeys and its KeyStore.
type StoredKey struct {
	ID   string   `json:"id"`
	Hash [32]byte `json:"hash"`
	Info KeyInfo  `json:"info"`
}

// KeyStore persists API keys by ID. Implementations must be safe for concurrent use and return an
// error wrapping ErrKeyNotFound for an unknown ID; any other error makes authentication fail closed
// (503).
type KeyStore interface {
	// Get returns the record of key id, or an error wrapping ErrKeyNotFound.
	Get(ctx context.Context, id string) (StoredKey, error)
	// Put creates or replaces the record k.ID.
	Put(ctx context.Context, k StoredKey) error
	// Delete removes the record of key id; deleting an unknown id is not an error.
	Delete(ctx context.Context, id string) error
}

// ConditionalKeyStore is a KeyStore that can replace a record only if it is still the one the
// caller read: a compare-and-swap. APIKeys.Rotate needs it to shorten the old key's expiry without
// undoing a Revoke (or another Rotate) that lands between its read and its write; with a plain
// Put, a key revoked meanwhile would come back. MemoryKeyStore and RedisKeyStore implement it.
// Implementations must be safe for concurrent use.
type ConditionalKeyStore interface {
	KeyStore
	// Update replaces record old.ID by next (next.ID must equal old.ID) if and only if the store
	// still holds old (same hash and metadata), as one atomic step. It returns an error wrapping
	// ErrKeyNotFound when the record no longer exists (revoked or expired) and one wrapping
	// ErrKeyChanged when it holds something else; in both cases nothing is written.
	Update(ctx context.Context, old, next StoredKey) error
}

// APIKeys authenticates requests by API key. It creates, revokes and rotates keys in its KeyStore.
// It is safe for concurrent use.
type APIKeys struct {
	g       *gate
	store   KeyStore
	header  string
	bearer  bool
	clock   func() time.Time
	timeout time.Duration
}

// NewAPIKeys returns the API key method over store (MemoryKeyStore or RedisKeyStore). Defaults:
// the key is read from the X-API-Key header (exactly one); APIKeyFromBearer also accepts
// Authorization: Bearer gk_...; store calls are bounded by 1 s (WithStoreTimeout) and a failing
// store rejects with 503.
func NewAPIKeys(store KeyStore, opts ...Option) (*APIKeys, error) {
	if store == nil {
		return nil, errors.New("auth: NewAPIKeys: nil store")
	}
	c, err := apply("NewAPIKeys", sMiddleware|sAPIKey, opts)
	if err != nil {
		return nil, err
	}
	k := &APIKeys{store: store, header: c.apiKeyHeader, bearer: c.apiKeyFromBearer, clock: c.clock, timeout: c.storeTimeout}
	if k.g, err = newGate(c, "apikey"); err != nil {
		return nil, err
	}
	return k, nil
}

// Wrap returns next behind API key authentication. The method value is a gatewaykit.Middleware.
func (k *APIKeys) Wrap(next http.Handler) http.Handler { return k.g.wrap(k, next) }

// Create stores a new key for info and returns it (the only time the plaintext exists) with its ID.
// The store call is bounded by the store timeout (default 1 s). Safe for concurrent use.
func (k *APIKeys) Create(ctx context.Context, info KeyInfo) (key, id string, err error) {
	if info.Subject == "" {
		return "", "", errors.New("auth: APIKeys.Create: empty subject")
	}
	b := make([]byte, apiKeyIDLen/2+32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	id = hex.EncodeToString(b[:apiKeyIDLen/2])
	key = apiKeyPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(b[apiKeyIDLen/2:])
	info.Roles, info.Scopes = slices.Clone(info.Roles), slices.Clone(info.Scopes)
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	if err := k.store.Put(ctx, StoredKey{ID: id, Hash: sha256.Sum256([]byte(key)), Info: info}); err != nil {
		return "", "", fmt.Errorf("auth: APIKeys.Create: %w", err)
	}
	return key, id, nil
}

// Revoke deletes the key with the given ID; later requests with it are rejected (at once on every
// instance sharing the store: API key results are not cached in-process). Revoking an unknown ID is
// not an error. Safe for concurrent use.
func (k *APIKeys) Revoke(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	if err := k.store.Delete(ctx, id); err != nil {
		return fmt.Errorf("auth: APIKeys.Revoke: %w", err)
	}
	return nil
}

// Rotate creates a new key with the metadata of key id and limits the old key to window from now
// (it keeps an earlier expiry), so both are valid during the rotation window. The new key inherits
// the old one's metadata, including its expiry. A window <= 0 revokes the old key at once; it works
// with any KeyStore.
//
// A window > 0 rewrites the old record, which needs a ConditionalKeyStore (MemoryKeyStore and
// RedisKeyStore are): with any other store Rotate fails before changing anything, with an error
// saying so, because a plain Put could bring back a key revoked while Rotate runs. The rewrite only
// applies if the old record is still the one Rotate read: if it was revoked meanwhile, Rotate
// returns an error wrapping ErrKeyNotFound and the revocation stands; if it was changed meanwhile
// (a concurrent Rotate of the same key), an error wrapping ErrKeyChanged, and the caller may retry.
// On any error no new key is returned and the one created for the rotation is deleted (best effort:
// nobody holds its plaintext, so a leftover record cannot authenticate anything). Store calls are
// bounded by the store timeout (default 1 s). Safe for concurrent use.
func (k *APIKeys) Rotate(ctx context.Context, id string, window time.Duration) (key, newID string, err error) {
	cs, conditional := k.store.(ConditionalKeyStore)
	if window > 0 && !conditional {
		return "", "", fmt.Errorf("auth: APIKeys.Rotate: key store %T does not implement auth.ConditionalKeyStore "+
			"(Update, a compare-and-swap), which rotation with a window needs so that a concurrent Revoke is never undone; "+
			"implement it, or rotate with window 0", k.store)
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	old, err := k.store.Get(ctx, id)
	if err != nil {
		return "", "", fmt.Errorf("auth: APIKeys.Rotate: %w", err)
	}
	if key, newID, err = k.Create(ctx, old.Info); err != nil {
		return "", "", err
	}
	if window <= 0 {
		if err := k.store.Delete(ctx, id); err != nil {
			return "", "", k.discard(ctx, newID, fmt.Errorf("auth: APIKeys.Rotate: revoking %s: %w", id, err))
		}
		return key, newID, nil
	}
	capped := old
	until := k.clock().Add(window)
	if old.Info.ExpiresAt.IsZero() || until.Before(old.Info.ExpiresAt) {
		capped.Info.ExpiresAt = until
	}
	if err := cs.Update(ctx, old, capped); err != nil {
		switch {
		case errors.Is(err, ErrKeyNotFound):
			err = fmt.Errorf("auth: APIKeys.Rotate: key %s was revoked during the rotation, no new key issued: %w", id, err)
		case errors.Is(err, ErrKeyChanged):
			err = fmt.Errorf("auth: APIKeys.Rotate: key %s changed during the rotation (concurrent Rotate?), nothing rotated: %w", id, err)
		default:
			err = fmt.Errorf("auth: APIKeys.Rotate: %w", err)
		}
		return "", "", k.discard(ctx, newID, err)
	}
	return key, newID, nil
}

// discard deletes the record of a key created by a Rotate that failed afterwards, and returns err,
// joined with the deletion's error if any. It has its own timeout: ctx may be what expired.
func (k *APIKeys) discard(ctx context.Context, id string, err error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.timeout)
	defer cancel()
	if derr := k.store.Delete(ctx, id); derr != nil {
		return errors.Join(err, fmt.Errorf("auth: APIKeys.Rotate: deleting the unissued key %s: %w", id, derr))
	}
	return err
}

// sameKey reports whether a and b are the same record (times compared as instants, nil and empty
// slices alike). It must compare every field of StoredKey and KeyInfo.
func sameKey(a, b StoredKey) bool {
	return a.ID == b.ID && a.Hash == b.Hash && a.Info.Subject == b.Info.Subject && a.Info.Tier == b.Info.Tier &&
		slices.Equal(a.Info.Roles, b.Info.Roles) && slices.Equal(a.Info.Scopes, b.Info.Scopes) &&
		a.Info.ExpiresAt.Equal(b.Info.ExpiresAt)
}

// credential returns the API key sent with r.
func (k *APIKeys) credential(r *http.Request) (string, error) {
	vs := r.Header[k.header]
	if len(vs) > 1 {
		return "", ErrAmbiguous
	}
	var key string
	if len(vs) == 1 {
		key = vs[0]
	}
	if k.bearer {
		tok, err := bearerToken(r.Header)
		if err != nil {
			return "", err
		}
		if tok != "" {
			if !strings.HasPrefix(tok, apiKeyPrefix) {
				if key == "" {
					return "", fmt.Errorf("%w: not an API key: %w", ErrMalformed, errDeclined)
				}
			} else if key != "" {
				return "", ErrAmbiguous
			} else {
				key = tok
			}
		}
	}
	if key == "" {
		return "", ErrNoCredentials
	}
	if len(key) > maxAPIKeyInput {
		return "", ErrTooLarge
	}
	return key, nil
}

// parseAPIKey returns the ID of a well-formed key.
func parseAPIKey(key string) (string, bool) {
	if len(key) != apiKeyLen || !strings.HasPrefix(key, apiKeyPrefix) || key[len(apiKeyPrefix)+apiKeyIDLen] != '_' {
		return "", false
	}
	id := key[len(apiKeyPrefix) : len(apiKeyPrefix)+apiKeyIDLen]
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", false
		}
	}
	return id, true
}

// Authenticate implements Authenticator. The Identity has Method "apikey", the key's metadata, and
// Claims {"key_id": id}.
func (k *APIKeys) Authenticate(r *http.Request) (*gatewaykit.Identity, error) {
	key, err := k.credential(r)
	if err != nil {
		return nil, err
	}
	if err := checkSingle(key); err != nil {
		return nil, err
	}
	id, ok := parseAPIKey(key)
	if !ok {
		return nil, fmt.Errorf("%w: not an API key", ErrMalformed)
	}
	ctx := r.Context()
	if _, local := k.store.(*memoryKeyStore); !local { // a map lookup needs no deadline (or its timer)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, k.timeout)
		defer cancel()
	}
	sk, err := k.store.Get(ctx, id)
	switch {
	case errors.Is(err, ErrKeyNotFound):
		return nil, fmt.Errorf("%w: unknown API key", ErrInvalidCredential)
	case err != nil:
		return nil, fmt.Errorf("%w: key store: %w", ErrUnavailable, err)
	}
	var buf [apiKeyLen]byte // parseAPIKey checked the length: hash from the stack, no allocation
	sum := sha256.Sum256(buf[:copy(buf[:], key)])
	if subtle.ConstantTimeCompare(sum[:], sk.Hash[:]) != 1 {
		return nil, fmt.Errorf("%w: unknown API key", ErrInvalidCredential)
	}
	if !sk.Info.ExpiresAt.IsZero() && !k.clock().Before(sk.Info.ExpiresAt) {
		return nil, fmt.Errorf("%w: API key expired", ErrInvalidCredential)
	}
	return &gatewaykit.Identity{Subject: sk.Info.Subject, Tier: sk.Info.Tier, Roles: sk.Info.Roles,
		Scopes: sk.Info.Scopes, Method: "apikey", Claims: map[string]any{"key_id": id}}, nil
}

// WithAPIKeyHeader sets the header carrying the API key. Default "X-API-Key". Applies to
// NewAPIKeys.
func WithAPIKeyHeader(name string) Option {
	return opt("WithAPIKeyHeader", sAPIKey, func(c *config) error {
		if name == "" || !validToken(name) || strings.EqualFold(name, "Authorization") {
			return fmt.Errorf("invalid header name %q", name)
		}
		c.apiKeyHeader = textproto.CanonicalMIMEHeaderKey(name)
		return nil
	})
}

// APIKeyFromBearer also accepts the key as "Authorization: Bearer gk_...". A bearer token that is
// not an API key is left to the next method of First. Applies to NewAPIKeys.
func APIKeyFromBearer() Option {
	return opt("APIKeyFromBearer", sAPIKey, func(c *config) error { c.apiKeyFromBearer = true; return nil })
}

// WithStoreTimeout bounds each key store call. Default 1 s. Applies to NewAPIKeys.
func WithStoreTimeout(d time.Duration) Option {
	return opt("WithStoreTimeout", sAPIKey, func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("timeout %v must be positive", d)
		}
		c.storeTimeout = d
		return nil
	})
}

// MemoryKeyStore returns an in-process KeyStore (a map guarded by a RWMutex), safe for concurrent
// use. Keys are lost on restart and not shared between gateway instances; use RedisKeyStore for
// that. The returned store also implements ConditionalKeyStore (Update compares and writes under
// the lock).
func MemoryKeyStore() KeyStore { return &memoryKeyStore{m: map[string]StoredKey{}} }

type memoryKeyStore struct {
	mu sync.RWMutex
	m  map[string]StoredKey
}

func (s *memoryKeyStore) Get(_ context.Context, id string) (StoredKey, error) {
	s.mu.RLock()
	k, ok := s.m[id]
	s.mu.RUnlock()
	if !ok {
		return StoredKey{}, ErrKeyNotFound
	}
	return k, nil
}

func (s *memoryKeyStore) Put(_ context.Context, k StoredKey) error {
	s.mu.Lock()
	s.m[k.ID] = k
	s.mu.Unlock()
	return nil
}

// Update implements ConditionalKeyStore: the comparison and the write happen under the lock.
func (s *memoryKeyStore) Update(_ context.Context, old, next StoredKey) error {
	if next.ID != old.ID {
		return fmt.Errorf("auth: Update: record %q cannot replace %q", next.ID, old.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.m[old.ID]
	switch {
	case !ok:
		return ErrKeyNotFound
	case !sameKey(cur, old):
		return ErrKeyChanged
	}
	s.m[next.ID] = next
	return nil
}

func (s *memoryKeyStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
	return nil
}
