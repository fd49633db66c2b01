package transcode

import (
	"io"
	"strings"
	"testing"
)

// grpc-gateway's generated bidi-streaming handlers decode the request body on a goroutine of their
// own while the error handler runs on the request's: the over-limit flag must be safe to set on
// one and read on the other (go test -race).
func TestLimitedBodyFlagAcrossGoroutines(t *testing.T) {
	st := &staticState{}
	b := &limitedBody{rc: io.NopCloser(strings.NewReader("0123456789")), left: 4, tooLarge: &st.tooLarge}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.ReadAll(b)
	}()
	for range 1000 {
		if st.tooLarge.Load() {
			break
		}
	}
	<-done
	if !st.tooLarge.Load() {
		t.Fatal("reading past the limit did not set the flag")
	}
}
