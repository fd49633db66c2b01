package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gatewaykit/gatewaykit"
)

// Session errors. Callers branch on them with errors.Is.
var (
	// ErrSessionInvalid means a session (or login state) cookie failed authentication: tampered,
	// truncated, sealed with an unknown key, or meant for another purpose.
	ErrSessionInvalid = errors.New("auth: invalid session")
	// ErrSessionExpired means the session outlived its lifetime or its refresh failed.
	ErrSessionExpired = errors.New("auth: session expired")
	// ErrSessionTooLarge means an encoded session needs more cookie chunks than allowed
	// (WithMaxCookieChunks); use a server-side session store (WithSessionStore) instead.
	ErrSessionTooLarge = errors.New("auth: session too large for a cookie")
)

// Cookie sealing: version byte | 4-byte key hint | 12-byte nonce | AES-256-GCM ciphertext and tag,
// base64url without padding. The associated data binds a cookie to its purpose (session, login state,
// store record) so that one cannot be replayed as another.
const (
	sealVersion  = 1
	sealHintSize = 4
	sealOverhead = 1 + sealHintSize + 12 + 16
	// SessionKeySize is the size of a session key (AES-256).
	SessionKeySize = 32
	// cookieChunkSize is the largest value put into one cookie; with the name and attributes a
	// cookie stays under the 4096 bytes every browser accepts.
	cookieChunkSize = 3800
	// maxSealedSize caps what open accepts before decoding anything.
	maxSealedSize = 64 << 10
)

type sealKey struct {
	hint [sealHintSize]byte
	aead cipher.AEAD
}

// sealer encrypts and authenticates with the first key and opens with any key (key rotation).
// It is immutable and safe for concurrent use.
type sealer struct {
	keys []sealKey
}

func newSealer(keys [][]byte) (*sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("no session key")
	}
	s := &sealer{}
	for i, k := range keys {
		if len(k) != SessionKeySize {
			return nil, fmt.Errorf("session key %d has %d bytes, want %d", i, len(k), SessionKeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(append([]byte("gatewaykit session key hint\x00"), k...))
		sk := sealKey{aead: aead}
		copy(sk.hint[:], sum[:])
		for _, prev := range s.keys {
			if prev.hint == sk.hint {
				return nil, fmt.Errorf("session key %d is given twice", i)
			}
		}
		s.keys = append(s.keys, sk)
	}
	return s, nil
}

// seal returns base64url(version | hint | nonce | ciphertext).
func (s *sealer) seal(plaintext, ad []byte) string {
	k := s.keys[0]
	buf := make([]byte, 1+sealHintSize+12, sealOverhead+len(plaintext))
	buf[0] = sealVersion
	copy(buf[1:], k.hint[:])
	nonce := buf[1+sealHintSize:]
	_, _ = rand.Read(nonce) // never fails (crypto/rand, Go 1.24+)
	buf = k.aead.Seal(buf, nonce, plaintext, ad)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// open reverses seal. Any failure (encoding, size, unknown key, authentication) is ErrSessionInvalid.
func (s *sealer) open(sealed string, ad []byte) ([]byte, error) {
	if len(sealed) > maxSealedSize || len(sealed) < base64.RawURLEncoding.EncodedLen(sealOverhead) {
		return nil, ErrSessionInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || raw[0] != sealVersion {
		return nil, ErrSessionInvalid
	}
	hint := raw[1 : 1+sealHintSize]
	nonce := raw[1+sealHintSize : 1+sealHintSize+12]
	ct := raw[1+sealHintSize+12:]
	for i := range s.keys {
		k := &s.keys[i]
		if string(k.hint[:]) != string(hint) {
			continue
		}
		if pt, err := k.aead.Open(ct[:0], nonce, ct, ad); err == nil {
			return pt, nil
		}
	}
	return nil, ErrSessionInvalid
}

// session is what the gateway keeps about a logged-in user. Its JSON form is sealed into the
// session cookie, or into a store record.
type session struct {
	ID           string         `json:"id"`
	Gen          uint64         `json:"gen"` // incremented by each refresh
	Claims       map[string]any `json:"claims"`
	AccessToken  string         `json:"at,omitempty"`
	TokenType    string         `json:"tt,omitempty"`
	RefreshToken string         `json:"rt,omitempty"`
	Expiry       time.Time      `json:"exp,omitzero"` // of the access token
	Created      time.Time      `json:"iat"`
	ExpiresAt    time.Time      `json:"end"` // absolute end of the session

	identity *gatewaykit.Identity // derived from Claims, not serialized
	// logoutKeys are the back-channel logout keys of Claims (sessionLogoutKeys), derived like
	// identity before the session is shared; nil when back-channel logout is off.
	logoutKeys []string
}

// sessionHeaderSize is the fixed prefix of a sealed session plaintext: the session ID (16 bytes)
// and generation, checked against the JSON body.
const sessionHeaderSize = 16 + 8

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// marshalSession encodes s as header | JSON.
func marshalSession(s *session) ([]byte, error) {
	id, err := base64.RawURLEncoding.DecodeString(s.ID)
	if err != nil || len(id) != 16 {
		return nil, errors.New("auth: session: bad id")
	}
	body, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	out := make([]byte, sessionHeaderSize, sessionHeaderSize+len(body))
	copy(out, id)
	binary.BigEndian.PutUint64(out[16:], s.Gen)
	return append(out, body...), nil
}

// unmarshalSession decodes header | JSON and checks that both agree.
func unmarshalSession(pt []byte) (*session, error) {
	if len(pt) < sessionHeaderSize {
		return nil, ErrSessionInvalid
	}
	s := &session{}
	if err := json.Unmarshal(pt[sessionHeaderSize:], s); err != nil {
		return nil, ErrSessionInvalid
	}
	id, err := base64.RawURLEncoding.DecodeString(s.ID)
	if err != nil || string(id) != string(pt[:16]) || binary.BigEndian.Uint64(pt[16:]) != s.Gen {
		return nil, ErrSessionInvalid
	}
	return s, nil
}

// cookieCodec writes and reads a sealed value as one cookie, or as chunks name, name_1, ... when it
// is larger than one cookie can hold.
type cookieCodec struct {
	name      string
	secure    bool
	maxChunks int
	names     []string // chunk names, precomputed by withNames
}

// withNames precomputes the chunk names (saves an allocation per chunk lookup).
func (c cookieCodec) withNames() cookieCodec {
	names := make([]string, c.maxChunks)
	for i := range names {
		names[i] = c.chunkName(i)
	}
	c.names = names
	return c
}

func (c cookieCodec) chunkName(i int) string {
	switch {
	case i < len(c.names):
		return c.names[i]
	case i == 0:
		return c.name
	}
	return c.name + "_" + strconv.Itoa(i)
}

// read concatenates the chunks present in r. It returns "" when the first is missing.
func (c cookieCodec) read(r *http.Request) string {
	first, err := r.Cookie(c.name)
	if err != nil || first.Value == "" {
		return ""
	}
	if c.maxChunks <= 1 {
		return first.Value
	}
	v := first.Value
	for i := 1; i < c.maxChunks; i++ {
		ck, err := r.Cookie(c.chunkName(i))
		if err != nil {
			break
		}
		v += ck.Value
	}
	return v
}

// write sets value as cookies with the given max age, deleting chunks of an earlier, longer value
// that r still carries. It fails with ErrSessionTooLarge when value needs more than maxChunks.
func (c cookieCodec) write(w http.ResponseWriter, r *http.Request, value string, maxAge time.Duration) error {
	n := (len(value) + cookieChunkSize - 1) / cookieChunkSize
	if n > c.maxChunks {
		return fmt.Errorf("%w: %d bytes need %d cookies, %d allowed", ErrSessionTooLarge, len(value), n, c.maxChunks)
	}
	age := int(maxAge / time.Second)
	if age <= 0 {
		age = 1
	}
	for i := range n {
		end := min((i+1)*cookieChunkSize, len(value))
		http.SetCookie(w, c.cookie(c.chunkName(i), value[i*cookieChunkSize:end], age))
	}
	for i := max(n, 1); i < c.maxChunks; i++ {
		if _, err := r.Cookie(c.chunkName(i)); err == nil {
			http.SetCookie(w, c.cookie(c.chunkName(i), "", -1))
		}
	}
	return nil
}

// clear deletes every chunk that r carries.
func (c cookieCodec) clear(w http.ResponseWriter, r *http.Request) {
	for i := range max(c.maxChunks, 1) {
		if _, err := r.Cookie(c.chunkName(i)); err == nil {
			http.SetCookie(w, c.cookie(c.chunkName(i), "", -1))
		}
	}
}

func (c cookieCodec) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: c.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
}
