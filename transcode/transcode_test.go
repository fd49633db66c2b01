package transcode_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/transcode"
	"github.com/gatewaykit/gatewaykit/transcode/internal/testpb"
)

func echoResponse(t *testing.T, w *httptest.ResponseRecorder) *testpb.EchoResponse {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", w.Code, w.Body)
	}
	var resp testpb.EchoResponse
	if err := protojson.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
	return &resp
}

type problem struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Status     int    `json:"status"`
	Detail     string `json:"detail"`
	GRPCStatus string `json:"grpc_status"`
}

func problemOf(t *testing.T, w *httptest.ResponseRecorder, wantStatus int) problem {
	t.Helper()
	if w.Code != wantStatus {
		t.Fatalf("status %d, want %d; body %s", w.Code, wantStatus, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != gatewaykit.ProblemContentType {
		t.Fatalf("Content-Type %q, want problem+json; body %s", ct, w.Body)
	}
	var p problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("decode problem %s: %v", w.Body, err)
	}
	if p.Status != wantStatus {
		t.Fatalf("problem status %d, want %d", p.Status, wantStatus)
	}
	return p
}

func TestGetPathAndQuery(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		h := build()
		w := do(h, "GET", "/v1/echo/a%20b?count=3&big=9007199254740993&flag=true&ratio=0.5&color=COLOR_BLUE"+
			"&tags=x&tags=y&label.key=k&at=2024-01-02T03:04:05Z&blob=aGk%3D&small=7&weight=1.5", "")
		req := echoResponse(t, w).GetRequest()
		if req.GetId() != "a b" || req.GetCount() != 3 || req.GetBig() != 9007199254740993 || !req.GetFlag() ||
			req.GetRatio() != 0.5 || req.GetColor() != testpb.Color_COLOR_BLUE || strings.Join(req.GetTags(), ",") != "x,y" ||
			req.GetLabel().GetKey() != "k" || req.GetAt().AsTime().Year() != 2024 || string(req.GetBlob()) != "hi" ||
			req.GetSmall() != 7 || req.GetWeight() != 1.5 {
			t.Fatalf("request bound wrongly: %v", req)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		// A single-segment variable is fully decoded, %2F included.
		if id := echoResponse(t, do(h, "GET", "/v1/echo/a%2Fb", "")).GetRequest().GetId(); id != "a/b" {
			t.Fatalf("id %q", id)
		}
		// lowerCamelCase by default, zero values omitted
		var raw map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &raw)
		if _, ok := raw["request"].(map[string]any)["label"]; !ok {
			t.Fatalf("missing label in %s", w.Body)
		}
		if _, ok := raw["index"]; ok {
			t.Fatalf("zero field emitted: %s", w.Body)
		}
	})
}

func TestJSONNamesAndUnpopulated(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		h := build(transcode.UseProtoNames(), transcode.EmitUnpopulated())
		w := do(h, "POST", "/v1/fail", `{"sleep_ms": 0}`)
		if w.Code != 200 {
			t.Fatalf("status %d %s", w.Code, w.Body)
		}
		w = do(h, "GET", "/v1/echo/x?label.key=k", "")
		var raw map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
			t.Fatal(err)
		}
		if raw["index"] != 0.0 {
			t.Fatalf("unpopulated index not emitted: %s", w.Body)
		}
		req, _ := raw["request"].(map[string]any)
		for _, k := range []string{"blob", "small", "shelf", "tags", "label"} {
			if _, ok := req[k]; !ok {
				t.Fatalf("unpopulated field %q not emitted: %s", k, w.Body)
			}
		}
	})
}

func TestPostBody(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		h := build()
		w := do(h, "POST", "/v1/echo/path-id", `{"id":"body-id","count":5,"tags":["t"],"label":{"key":"a","value":"b"}}`)
		req := echoResponse(t, w).GetRequest()
		if req.GetId() != "path-id" || req.GetCount() != 5 || req.GetTags()[0] != "t" || req.GetLabel().GetValue() != "b" {
			t.Fatalf("request bound wrongly: %v", req)
		}
		// An empty body is an empty message.
		if req := echoResponse(t, do(h, "POST", "/v1/echo/e", "")).GetRequest(); req.GetId() != "e" || req.GetCount() != 0 {
			t.Fatalf("empty body: %v", req)
		}
	})
}

func TestBindingsVerbsAndResponseBody(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		h := build()
		// additional binding: body is one repeated field, multi-segment variable on a nested field
		req := echoResponse(t, do(h, "PUT", "/v1/shelves/s1/echo/books/b2", `["t1","t2"]`)).GetRequest()
		if req.GetShelf() != "s1" || req.GetLabel().GetValue() != "books/b2" || strings.Join(req.GetTags(), ",") != "t1,t2" {
			t.Fatalf("additional binding: %v", req)
		}
		// custom verb, ** and response_body
		w := do(h, "GET", "/v1/shelves/a/items/x/y:lookup", "")
		if w.Code != 200 {
			t.Fatalf("lookup: %d %s", w.Code, w.Body)
		}
		var labels []map[string]string
		if err := json.Unmarshal(w.Body.Bytes(), &labels); err != nil || len(labels) != 1 || labels[0]["value"] != "shelves/a/items/x/y" {
			t.Fatalf("response_body: %s (%v)", w.Body, err)
		}
		// body is a message field, path binds a field inside it
		w = do(h, "PATCH", "/v1/items/n1?validateOnly=true", `{"stock":4,"labels":[{"key":"k"}]}`)
		var item testpb.Item
		if err := protojson.Unmarshal(w.Body.Bytes(), &item); err != nil || item.GetName() != "n1" || item.GetStock() != -1 {
			t.Fatalf("patch: %d %s", w.Code, w.Body)
		}
		// custom HTTP method, and DELETE
		for _, method := range []string{"PURGE", "DELETE"} {
			w = do(h, method, "/v1/echo/p?count=2", "")
			if resp := echoResponse(t, w); resp.GetIndex() != 99 || resp.GetRequest().GetId() != "p" || resp.GetRequest().GetCount() != 2 {
				t.Fatalf("%s: %v", method, resp)
			}
		}
	})
}

// The documented gRPC code -> HTTP status table.
var wantStatus = map[codes.Code]int{
	codes.Canceled: 499, codes.Unknown: 500, codes.InvalidArgument: 400, codes.DeadlineExceeded: 504,
	codes.NotFound: 404, codes.AlreadyExists: 409, codes.PermissionDenied: 403, codes.ResourceExhausted: 429,
	codes.FailedPrecondition: 400, codes.Aborted: 409, codes.OutOfRange: 400, codes.Unimplemented: 501,
	codes.Internal: 500, codes.Unavailable: 503, codes.DataLoss: 500, codes.Unauthenticated: 401,
}

func TestStatusCodes(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		h := build()
		for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
			w := do(h, "POST", "/v1/fail", fmt.Sprintf(`{"code":%d,"message":"db password is hunter2"}`, c))
			p := problemOf(t, w, wantStatus[c])
			if p.GRPCStatus != transcode.CodeName(c) || strings.Contains(w.Body.String(), "hunter2") {
				t.Errorf("%v: problem %+v leaks or misnames", c, p)
			}
			if transcode.HTTPStatus(c) != wantStatus[c] {
				t.Errorf("HTTPStatus(%v) = %d", c, transcode.HTTPStatus(c))
			}
			if c == codes.Unauthenticated && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		}
	})
	if transcode.HTTPStatus(codes.Code(42)) != 500 || transcode.HTTPStatus(codes.OK) != 200 {
		t.Fatal("out-of-range code")
	}
}

func TestStatusMessageOptions(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		p := problemOf(t, do(build(transcode.ExposeStatusMessages()), "POST", "/v1/fail", `{"code":5,"message":"user 7 not found"}`), 404)
		if p.Detail != "user 7 not found" {
			t.Fatalf("detail %q", p.Detail)
		}
		w := do(build(transcode.GatewayErrors()), "POST", "/v1/fail", `{"code":9,"message":"secret"}`)
		var ge struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Details []any  `json:"details"`
		}
		if w.Code != 400 || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("gateway error: %d %q", w.Code, w.Header().Get("Content-Type"))
		}
		if err := json.Unmarshal(w.Body.Bytes(), &ge); err != nil || ge.Code != 9 || ge.Message == "" || strings.Contains(ge.Message, "secret") || ge.Details == nil {
			t.Fatalf("gateway error body %s", w.Body)
		}
		// A custom error handler sees the problem.
		var got *gatewaykit.Problem
		h := build(transcode.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, p *gatewaykit.Problem) {
			got = p
			w.WriteHeader(p.Status)
		}))
		do(h, "POST", "/v1/fail", `{"code":14}`)
		if got == nil || got.Status != 503 || got.Err == nil {
			t.Fatalf("error handler got %+v", got)
		}
	})
}

func TestDeadline(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		p := problemOf(t, do(build(transcode.Timeout(50*time.Millisecond)), "POST", "/v1/fail", `{"sleep_ms":5000}`), 504)
		if p.GRPCStatus != "DEADLINE_EXCEEDED" {
			t.Fatalf("%+v", p)
		}
		// The request context's deadline is honoured without Timeout.
		h := build()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		r := httptest.NewRequest("POST", "/v1/fail", strings.NewReader(`{"sleep_ms":5000}`)).WithContext(ctx)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		problemOf(t, w, 504)
	})
}

func TestMetadataForwarding(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		h := build(transcode.ForwardHeaders("X-Tenant"))
		spoof := []string{
			"X-User-Id", "mallory", "X-User-Roles", "root", "X-User-Tier", "platinum", "X-Request-Id", "forged",
			"Grpc-Metadata-X-User-Id", "mallory", "Authorization", "Bearer stolen", "Cookie", "s=1",
			"X-Forwarded-For", "6.6.6.6", "X-Forwarded-Host", "evil", "X-Other", "o", "X-Tenant", "t1",
		}
		r := httptest.NewRequest("GET", "/v1/echo/m", nil)
		for i := 0; i < len(spoof); i += 2 {
			r.Header.Add(spoof[i], spoof[i+1])
		}
		ctx := gatewaykit.WithIdentity(r.Context(), &gatewaykit.Identity{Subject: "alice", Roles: []string{"admin", "ops"}, Tier: "gold"})
		ctx = gatewaykit.WithRequestID(ctx, "rid-1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r.WithContext(ctx))
		got := echoResponse(t, w).GetMetadata()
		want := map[string]string{"x-user-id": "alice", "x-user-roles": "admin,ops", "x-user-tier": "gold", "x-request-id": "rid-1", "x-tenant": "t1"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("backend received %v, want exactly %v", got, want)
		}
		// Anonymous: spoofed identity headers still do not reach the backend.
		got = echoResponse(t, do(h, "GET", "/v1/echo/m", "", spoof...)).GetMetadata()
		if fmt.Sprint(keys(got)) != "[x-tenant]" {
			t.Fatalf("anonymous request forwarded %v", got)
		}
	})
	for _, name := range []string{"X-User-ID", "x-request-id", "Connection", "Grpc-Timeout", "X-Data-Bin", "Bad Header"} {
		if _, err := transcode.New(insecureDial, transcode.Register("127.0.0.1:1", testpb.RegisterEchoServiceHandler), transcode.ForwardHeaders(name)); err == nil {
			t.Errorf("ForwardHeaders(%q) accepted", name)
		}
	}
	tr, err := transcode.New(insecureDial, transcode.Register("127.0.0.1:1", testpb.RegisterEchoServiceHandler),
		transcode.SubjectKey("x-sub"), transcode.ForwardHeaders("X-User-Id"))
	if err != nil {
		t.Fatalf("moved subject key still reserved the old name: %v", err)
	}
	_ = tr.Close()
}

func TestResponseMetadata(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		srv := httptest.NewServer(build(transcode.ResponseHeaders("x-served-by"), transcode.ResponseTrailers("x-checksum")))
		defer srv.Close()
		req, _ := http.NewRequest("GET", srv.URL+"/v1/echo/r", nil)
		req.Header.Set("TE", "trailers")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Header.Get("X-Served-By") != "echo" || resp.Header.Get("X-Internal-Host") != "" || resp.Header.Get("Grpc-Metadata-X-Served-By") != "" {
			t.Fatalf("headers %v", resp.Header)
		}
		if resp.Trailer.Get("X-Checksum") != "abc" || resp.Trailer.Get("X-Internal-Trace") != "" {
			t.Fatalf("trailers %v", resp.Trailer)
		}
		// No metadata at all by default.
		w := do(build(), "GET", "/v1/echo/r", "")
		for k := range w.Header() {
			if strings.Contains(strings.ToLower(k), "served") || strings.Contains(strings.ToLower(k), "internal") {
				t.Fatalf("header %q leaked by default", k)
			}
		}
	})
}

func TestMalformedBody(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		h := build()
		for _, body := range []string{`{"count":`, `{"count":"many"}`, `[1,2]`, "\x00"} {
			problemOf(t, do(h, "POST", "/v1/echo/x", body), 400)
		}
		problemOf(t, do(h, "PUT", "/v1/shelves/s/echo/books/b", `["a"], "id": "x"`), 400)
		problemOf(t, do(h, "GET", "/v1/echo/x?count=notanumber", ""), 400)
		problemOf(t, do(h, "GET", "/v1/echo/x?color=PURPLE", ""), 400)
	})
}

func TestUnknownFields(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		problemOf(t, do(build(), "POST", "/v1/echo/x", `{"count":1,"nope":true}`), 400)
		req := echoResponse(t, do(build(transcode.DiscardUnknownFields()), "POST", "/v1/echo/x", `{"count":1,"nope":true}`)).GetRequest()
		if req.GetCount() != 1 {
			t.Fatalf("%v", req)
		}
	})
}

func TestDynamicUnknownQuery(t *testing.T) {
	addr := startBackend(t)
	h := modes[1].build(t, addr)
	problemOf(t, do(h, "GET", "/v1/echo/x?nope=1", ""), 400)
	problemOf(t, do(h, "GET", "/v1/echo/x?id=other", ""), 400)   // bound by the path
	problemOf(t, do(h, "POST", "/v1/echo/x?count=1", `{}`), 400) // body "*" takes every field
	problemOf(t, do(h, "GET", "/v1/echo/x?count=1&count=2", ""), 400)
	problemOf(t, do(h, "GET", "/v1/echo/x?label=1", ""), 400)
	problemOf(t, do(h, "GET", "/v1/echo/x?count=%zz", ""), 400)
	lenient := modes[1].build(t, addr, transcode.DiscardUnknownFields())
	if req := echoResponse(t, do(lenient, "GET", "/v1/echo/x?nope=1&id=other&count=2", "")).GetRequest(); req.GetId() != "x" || req.GetCount() != 2 {
		t.Fatalf("%v", req)
	}
}

func TestOversizedBody(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		h := build(transcode.MaxBodyBytes(64))
		big := `{"tags":["` + strings.Repeat("a", 100) + `"]}`
		problemOf(t, do(h, "POST", "/v1/echo/x", big), 413)
		// Without a Content-Length the limit still holds.
		r := httptest.NewRequest("POST", "/v1/echo/x", io.MultiReader(strings.NewReader(big)))
		r.ContentLength = -1
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		problemOf(t, w, 413)
		exact := `{"tags":["` + strings.Repeat("a", 64-13) + `"]}`
		if len(exact) != 64 {
			t.Fatalf("len %d", len(exact))
		}
		echoResponse(t, do(h, "POST", "/v1/echo/x", exact))
	})
}

func TestRouting(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		tr := build().(*transcode.Transcoder)
		problemOf(t, do(tr, "GET", "/v2/nothing", ""), 404)
		w := do(tr, "PATCH", "/v1/echo/x", "")
		problemOf(t, w, 405)
		if a := w.Header().Get("Allow"); a != "" && a != "DELETE, GET, POST, PURGE" { // grpc-gateway does not say
			t.Fatalf("Allow %q", a)
		}
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
		h := tr.Wrap(next)
		if w := do(h, "GET", "/v2/nothing", "", "Authorization", "x"); w.Code != http.StatusTeapot {
			t.Fatalf("Wrap did not pass on: %d", w.Code)
		}
		// A known path with a method no rule serves is not a transcoder request either: the
		// handler behind may serve it (both modes behave alike).
		if w := do(h, "PATCH", "/v1/echo/x", ""); w.Code != http.StatusTeapot {
			t.Fatalf("Wrap answered another method on a transcoded path itself: %d", w.Code)
		}
		echoResponse(t, do(h, "GET", "/v1/echo/x", ""))
	})
}

// streamLines reads an NDJSON response.
func streamLines(t *testing.T, resp *http.Response) []map[string]json.RawMessage {
	t.Helper()
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestServerStreaming(t *testing.T) {
	forEachMode(t, func(t *testing.T, build func(...transcode.Option) http.Handler) {
		srv := httptest.NewServer(build())
		defer srv.Close()
		get := func(path string) *http.Response {
			req, _ := http.NewRequest("GET", srv.URL+path, nil)
			ctx := gatewaykit.WithRequestID(context.Background(), "unused") // the client context does not travel
			resp, err := srv.Client().Do(req.WithContext(ctx))
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		resp := get("/v1/stream/3")
		lines := streamLines(t, resp)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" || len(lines) != 3 {
			t.Fatalf("status %d, type %q, %d lines", resp.StatusCode, resp.Header.Get("Content-Type"), len(lines))
		}
		for i, l := range lines {
			var m testpb.EchoResponse
			if err := protojson.Unmarshal(l["result"], &m); err != nil || int(m.GetIndex()) != i {
				t.Fatalf("line %d: %s", i, l["result"])
			}
		}

		resp = get("/v1/stream/2?failCode=5")
		lines = streamLines(t, resp)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(lines) != 3 {
			t.Fatalf("failing stream: %d, %d lines", resp.StatusCode, len(lines))
		}
		var se struct{ Error transcode.StreamError }
		last, _ := json.Marshal(lines[2])
		if err := json.Unmarshal(last, &se); err != nil || se.Error != (transcode.StreamError{Code: 5, Status: "NOT_FOUND", HTTPStatus: 404, Message: "The resource was not found."}) {
			t.Fatalf("error line %s", last)
		}

		resp = get("/v1/stream/0?failCode=7")
		lines = streamLines(t, resp)
		resp.Body.Close()
		if resp.StatusCode != 403 || len(lines) != 1 || !strings.Contains(string(lines[0]["error"]), `"PERMISSION_DENIED"`) {
			t.Fatalf("immediate failure: %d %v", resp.StatusCode, lines)
		}

		// Flushed per message: the first line arrives while the backend still holds the stream open.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/stream/2?intervalMs=60000", nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(resp.Body).ReadString('\n')
			got <- line
		}()
		select {
		case line := <-got:
			if !strings.HasPrefix(line, `{"result":`) {
				t.Fatalf("first line %q", line)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("first message not flushed")
		}
		cancel()
	})
}

// eofStream is a client stream whose server "already ended the call": SendMsg reports io.EOF
// (grpc-go's contract: the status comes from RecvMsg) and RecvMsg returns that status.
type eofStream struct {
	grpc.ClientStream
	st error
}

func (s eofStream) SendMsg(any) error { return io.EOF }
func (s eofStream) RecvMsg(any) error { return s.st }

// TestStreamSendEOFTakesStatusFromRecv: a stream whose SendMsg returns io.EOF is answered with
// the status RecvMsg reports (PERMISSION_DENIED -> 403), not with "UNKNOWN: EOF" (500).
func TestStreamSendEOFTakesStatusFromRecv(t *testing.T) {
	addr := startBackend(t)
	icpt := grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return eofStream{ClientStream: cs, st: status.Error(codes.PermissionDenied, "denied")}, nil
	})
	tr := modes[1].build(t, addr, transcode.WithDialOptions(icpt))
	w := do(tr, "GET", "/v1/stream/2", "")
	if w.Code != http.StatusForbidden {
		t.Fatalf("status %d, body %s; want 403 from RecvMsg's status", w.Code, w.Body)
	}
}
