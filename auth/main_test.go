package auth_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// otter runs maintenance on short-lived goroutines that may outlive a test by a moment.
		goleak.IgnoreAnyFunction("github.com/maypok86/otter/v2.(*cache[...]).performCleanUp"),
	)
}
