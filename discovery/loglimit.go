package discovery

import (
	"sync/atomic"
	"time"
)

// logLimiter allows one log line per second; it is lock-free and safe for concurrent use.
type logLimiter struct{ next atomic.Int64 }

func (l *logLimiter) allow() bool {
	now := time.Now().UnixNano()
	n := l.next.Load()
	return now >= n && l.next.CompareAndSwap(n, now+int64(time.Second))
}

// logWriter adapts the ReverseProxy's log.Logger output to slog, rate limited.
type logWriter struct{ p *Proxy }

func (w logWriter) Write(b []byte) (int, error) {
	if w.p.logLimit.allow() {
		msg := string(b)
		if len(msg) > 0 && msg[len(msg)-1] == '\n' {
			msg = msg[:len(msg)-1]
		}
		w.p.logger.Warn("discovery: proxy: "+msg, "service", w.p.service)
	}
	return len(b), nil
}
