package guard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// TestConcurrencyPooledTimerAsync runs TestConcurrencyPooledTimerNoStaleFire with the timer
// channels of Go before 1.23 (GODEBUG=asynctimerchan=1, which a program gets from its own go.mod
// or environment): there, a timer that fires while its waiter is being granted keeps its tick
// in the channel after Stop.
func TestConcurrencyPooledTimerAsync(t *testing.T) {
	if os.Getenv("GATEWAYKIT_GUARD_TIMER_CHILD") != "" {
		t.Skip("in the child")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrencyPooledTimerNoStaleFire$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=asynctimerchan=1", "GATEWAYKIT_GUARD_TIMER_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestConcurrencyPooledTimerNoStaleFire: a waiter's pooled timer that fired while the waiter was
// being granted its slot must not carry that tick to the next waiter that reuses it, which would
// be rejected at once ("wait_timeout") instead of waiting MaxWait.
//
// With one P, the scheduler runs an expired timer only when a goroutine parks: the test grants
// the slot after the waiter's (short) timer expired, then parks, so the timer fires after the
// grant woke the waiter. The next waiter (long MaxWait) must still be waiting when it is granted.
func TestConcurrencyPooledTimerNoStaleFire(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	l, err := NewConcurrency(1, QueueSize(1))
	if err != nil {
		t.Fatal(err)
	}
	h := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	serve := func() <-chan int {
		done := make(chan int, 1)
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil).WithContext(context.Background()))
			done <- rec.Code
		}()
		return done
	}
	hold := func() *keyState { // takes the only slot by hand, as Wrap's fast path does
		l.mu.Lock()
		defer l.mu.Unlock()
		ks := l.lookup("")
		l.inFlight++
		ks.inFlight++
		return ks
	}
	queued := func(done <-chan int) {
		for l.Waiting() != 1 {
			select {
			case code := <-done:
				t.Fatalf("the waiter was answered %d before its MaxWait", code)
			default:
				runtime.Gosched()
			}
		}
	}
	// Under the race detector sync.Pool drops some waiters: repeat.
	for range 40 {
		// A waiter whose short timer expires just before its grant.
		holder := hold()
		l.maxWait = time.Millisecond
		done := serve()
		queued(done)
		for start := time.Now(); time.Since(start) < 3*time.Millisecond; {
			// Spin without parking: the waiter's timer expires but does not fire yet.
		}
		l.release(holder)
		<-done

		// The next waiter reuses the pooled waiter and its timer.
		holder = hold()
		l.maxWait = time.Minute
		done = serve()
		queued(done)
		l.release(holder)
		if code := <-done; code != http.StatusOK {
			t.Fatalf("the waiter got %d, want 200: its reused timer fired at once", code)
		}
	}
	if err := l.check(); err != nil || l.InFlight() != 0 || l.Waiting() != 0 {
		t.Fatalf("%v; in flight %d, waiting %d", err, l.InFlight(), l.Waiting())
	}
}
