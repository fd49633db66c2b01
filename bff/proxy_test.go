package bff_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// TestBehindReverseProxy runs the design brief's variants in front of httputil.ReverseProxy and a
// real upstream that gzips when asked, over real connections.
func TestBehindReverseProxy(t *testing.T) {
	upstreamSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = io.WriteString(zw, profile)
			_ = zw.Close()
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(profile)))
		_, _ = io.WriteString(w, profile)
	}))
	defer upstreamSrv.Close()
	target, _ := url.Parse(upstreamSrv.URL)
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}
	gw := httptest.NewServer(newBFF(t, designVariants()...).Wrap(proxy))
	defer gw.Close()
	defer gw.Client().CloseIdleConnections()

	for _, tt := range []struct {
		name, path, acceptEncoding string
		want                       string
	}{
		{"mobile gzip", "/mobile/api/users/7", "gzip", `{"id":7,"name":"Ada Lovelace","avatar":"https://cdn.example.com/a/7.png"}`},
		{"mobile identity", "/mobile/api/users/7", "identity", `{"id":7,"name":"Ada Lovelace","avatar":"https://cdn.example.com/a/7.png"}`},
		{"web gzip", "/web/api/users/7", "gzip", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", gw.URL+tt.path, nil)
			req.Header.Set("Accept-Encoding", tt.acceptEncoding) // set explicitly: no transparent decoding
			resp, err := gw.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body io.Reader = resp.Body
			if resp.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				body = zr
			} else if tt.acceptEncoding == "gzip" {
				t.Fatalf("gzip accepted but identity sent: %v", resp.Header)
			}
			got, err := io.ReadAll(body)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "" {
				want = strings.Replace(profile, `,"internal_notes":"VIP; handle with care"`, "", 1)
			}
			if resp.StatusCode != 200 || string(got) != want {
				t.Fatalf("got %d %s\nwant %s", resp.StatusCode, got, want)
			}
		})
	}
}
