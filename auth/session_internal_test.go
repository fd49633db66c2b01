package auth

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func testSealer(t testing.TB, names ...string) *sealer {
	t.Helper()
	var keys [][]byte
	for _, n := range names {
		k := sha256.Sum256([]byte(n))
		keys = append(keys, k[:])
	}
	s, err := newSealer(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealerPurposeAndRotation(t *testing.T) {
	old := testSealer(t, "k1")
	rotated := testSealer(t, "k2", "k1")
	v := old.seal([]byte("payload"), adSessionCookie)
	if pt, err := rotated.open(v, adSessionCookie); err != nil || string(pt) != "payload" {
		t.Fatalf("rotated keys cannot open an old-key value: %q %v", pt, err)
	}
	if _, err := old.open(v, adLoginState); !errors.Is(err, ErrSessionInvalid) {
		t.Fatalf("a session value opened as login state: %v", err)
	}
	if _, err := testSealer(t, "k2").open(v, adSessionCookie); !errors.Is(err, ErrSessionInvalid) {
		t.Fatalf("opened without its key: %v", err)
	}
	if a, b := old.seal([]byte("x"), nil), old.seal([]byte("x"), nil); a == b {
		t.Fatal("two seals of the same plaintext are equal (nonce reuse)")
	}
	for _, bad := range [][][]byte{nil, {make([]byte, 16)}, {make([]byte, 32), make([]byte, 32)}} {
		if _, err := newSealer(bad); err == nil {
			t.Fatalf("newSealer accepted %d keys", len(bad))
		}
	}
}

func TestCookieCodecChunks(t *testing.T) {
	cc := cookieCodec{name: "s", secure: true, maxChunks: 3}
	value := strings.Repeat("v", 2*cookieChunkSize+10) // three chunks
	w := httptest.NewRecorder()
	if err := cc.write(w, httptest.NewRequest(http.MethodGet, "/", nil), value, time.Hour); err != nil {
		t.Fatal(err)
	}
	set := w.Result().Cookies()
	if len(set) != 3 {
		t.Fatalf("%d cookies, want 3", len(set))
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, c := range set {
		if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || len(c.Value) > cookieChunkSize {
			t.Fatalf("cookie attributes: %+v", c)
		}
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	if got := cc.read(r); got != value {
		t.Fatalf("read %d bytes, want %d", len(got), len(value))
	}
	// A shorter value deletes the chunks it no longer needs.
	w = httptest.NewRecorder()
	if err := cc.write(w, r, "short", time.Hour); err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 {
			deleted++
		}
	}
	if deleted != 2 {
		t.Fatalf("stale chunks deleted: %d, want 2", deleted)
	}
	// Too large is a clear error, and no cookie is written.
	w = httptest.NewRecorder()
	err := cc.write(w, r, strings.Repeat("v", 3*cookieChunkSize+1), time.Hour)
	if !errors.Is(err, ErrSessionTooLarge) || len(w.Result().Cookies()) != 0 {
		t.Fatalf("too large: %v, %d cookies", err, len(w.Result().Cookies()))
	}
}

func TestSessionRoundTrip(t *testing.T) {
	s := &session{ID: newSessionID(), Gen: 7, Claims: map[string]any{"sub": "alice", "roles": []any{"admin"}},
		AccessToken: "at", RefreshToken: "rt", Expiry: time.Unix(1e9, 0).UTC(), Created: time.Unix(1e9, 0).UTC(),
		ExpiresAt: time.Unix(1e9+3600, 0).UTC()}
	pt, err := marshalSession(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := unmarshalSession(pt)
	if err != nil || got.ID != s.ID || got.Gen != 7 || got.AccessToken != "at" || got.Claims["sub"] != "alice" || !got.ExpiresAt.Equal(s.ExpiresAt) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	// The header must agree with the body.
	pt[20] ^= 1
	if _, err := unmarshalSession(pt); !errors.Is(err, ErrSessionInvalid) {
		t.Fatalf("header/body mismatch accepted: %v", err)
	}
}

func TestReturnURLValidator(t *testing.T) {
	v, err := newReturnURLs([]string{"https://app.example.com", "http://localhost:3000"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   string
		want string // "" means refused
	}{
		{"/", "/"},
		{"/orders?page=2#top", "/orders?page=2#top"},
		{"https://app.example.com/x", "https://app.example.com/x"},
		{"HTTPS://APP.example.com/x", "https://APP.example.com/x"},
		{"http://localhost:3000/", "http://localhost:3000/"},
		{"http://localhost:3001/", ""},
		{"https://app.example.com:443/x", ""},
		{"//evil.example", ""},
		{"///evil.example", ""},
		{"/\\evil.example", ""},
		{"\\/evil.example", ""},
		{"/%2f%2fevil.example", ""},
		{"https:evil.example", ""},
		{"https:/evil.example", ""},
		{"https://app.example.com@evil.example", ""},
		{"https://user@app.example.com/", ""},
		{"javascript:alert(1)", ""},
		{"data:text/html,x", ""},
		{"orders", ""},
		{"/a\tb", ""},
		{"/a\nb", ""},
		{"/a b", ""},
		{"", ""},
		{"/" + strings.Repeat("a", maxReturnURL), ""},
	}
	for _, tt := range tests {
		got, ok := v.check(tt.in)
		if ok != (tt.want != "") || got != tt.want {
			t.Errorf("check(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
	for _, bad := range []string{"app.example.com", "https://app.example.com/path", "ftp://x", "https://u@x"} {
		if _, err := newReturnURLs([]string{bad}); err == nil {
			t.Errorf("origin %q accepted", bad)
		}
	}
}

// FuzzReturnURL: whatever the validator accepts is a same-origin path that no browser reads as
// another host, or an allowed origin.
func FuzzReturnURL(f *testing.F) {
	for _, s := range []string{"/", "/a?b=c", "//evil", "/\\evil", "https://app.example.com/x", "https://evil/",
		"/%2F%2Fx", "https://app.example.com@evil", "javascript:x", "\x00/", "/.//x", "https://app.example.com\\@evil"} {
		f.Add(s)
	}
	v, err := newReturnURLs([]string{"https://app.example.com"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, ok := v.check(in)
		if !ok {
			return
		}
		if strings.ContainsAny(out, "\\\r\n\t ") {
			t.Fatalf("%q -> %q contains a dangerous character", in, out)
		}
		// Resolve it as a browser would, against the gateway's origin.
		base, _ := url.Parse("https://gw.example/start")
		ref, err := url.Parse(out)
		if err != nil {
			t.Fatalf("%q -> unparsable %q", in, out)
		}
		res := base.ResolveReference(ref)
		if h := strings.ToLower(res.Scheme + "://" + res.Host); h != "https://gw.example" && h != "https://app.example.com" {
			t.Fatalf("%q -> %q leads to %s", in, out, h)
		}
		if res.User != nil {
			t.Fatalf("%q -> %q carries userinfo", in, out)
		}
	})
}

// FuzzSessionCookie: opening and decoding arbitrary cookie values never panics and never yields a
// session; values sealed by the right key survive any decoding round.
func FuzzSessionCookie(f *testing.F) {
	s := testSealer(f, "fuzz")
	// Deterministic (fuzz workers run this setup in their own processes).
	sess := &session{ID: "AAAAAAAAAAAAAAAAAAAAAA", Claims: map[string]any{"sub": "a"}, ExpiresAt: time.Unix(2e9, 0)}
	pt, err := marshalSession(sess)
	if err != nil {
		f.Fatal(err)
	}
	good := s.seal(pt, adSessionCookie)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add("")
	f.Add("AQ")
	f.Add(strings.Repeat("A", 60))
	f.Add("!!!!")
	f.Fuzz(func(t *testing.T, v string) {
		out, err := s.open(v, adSessionCookie)
		if err != nil {
			if !errors.Is(err, ErrSessionInvalid) {
				t.Fatalf("error %v is not ErrSessionInvalid", err)
			}
			return
		}
		// Only a value sealed by us opens: the plaintext must be ours.
		if !bytes.Equal(out, pt) {
			t.Fatalf("forged value opened: %q", v)
		}
		if _, err := unmarshalSession(out); err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkSessionDecode measures what a session cookie costs without the decode cache (a new
// session or another gateway instance): AES-256-GCM open, JSON decode and the identity mapping.
func BenchmarkSessionDecode(b *testing.B) {
	s := testSealer(b, "bench")
	sess := &session{ID: newSessionID(), Claims: map[string]any{
		"iss": "https://idp.example", "sub": "alice", "aud": []any{"gateway"}, "exp": 2e9, "iat": 1e9,
		"auth_time": 1e9, "nonce": "n-0S6_WzA2Mj", "amr": []any{"pwd"}, "azp": "gateway",
		"roles": []any{"admin", "user"}, "scope": "openid offline_access", "email": "alice@example.com",
	}, AccessToken: strings.Repeat("a", 800), RefreshToken: strings.Repeat("r", 300),
		Expiry: time.Unix(2e9, 0), Created: time.Unix(1e9, 0), ExpiresAt: time.Unix(2e9, 0)}
	pt, err := marshalSession(sess)
	if err != nil {
		b.Fatal(err)
	}
	v := s.seal(pt, adSessionCookie)
	cm := newClaimMapper(defaultConfig())
	b.Logf("sealed cookie: %d bytes", len(v))
	b.ReportAllocs()
	for b.Loop() {
		pt, err := s.open(v, adSessionCookie)
		if err != nil {
			b.Fatal(err)
		}
		got, err := unmarshalSession(pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cm.identity(got.Claims, "session"); err != nil {
			b.Fatal(err)
		}
	}
}
