package main

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

var wrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
var wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses:\s+([0-9]+)`)

// closedLoop drives t with conns connections as fast as it answers and returns successful
// requests per second.
func closedLoop(ctx context.Context, tool string, t target, conns int, d time.Duration) (float64, error) {
	if tool == "wrk" {
		args := []string{"-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(max(1, int(d.Seconds()))) + "s"}
		for k, v := range t.headers {
			args = append(args, "-H", k+": "+v)
		}
		out, err := exec.CommandContext(ctx, "wrk", append(args, t.url)...).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("wrk: %v: %s", err, out)
		}
		if m := wrkNon2xx.FindSubmatch(out); m != nil {
			return 0, fmt.Errorf("wrk saw %s non-2xx responses", m[1])
		}
		m := wrkRPS.FindSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("wrk output without Requests/sec: %s", out)
		}
		return strconv.ParseFloat(string(m[1]), 64)
	}
	atk := vegeta.NewAttacker(vegeta.Connections(conns), vegeta.MaxConnections(conns), vegeta.Workers(uint64(conns)),
		vegeta.MaxWorkers(uint64(conns)), vegeta.KeepAlive(true))
	var ok int
	start := time.Now()
	for r := range atk.Attack(targeter(t), vegeta.Rate{Freq: 0}, d, t.name) {
		if r.Code == 200 {
			ok++
		}
	}
	return float64(ok) / time.Since(start).Seconds(), nil
}

// latency holds open-loop percentiles, measured from each request's scheduled send time.
type latency struct {
	P50, P90, P99, Max time.Duration
	Requests, Errors   int
}

// openLoop sends rate requests per second to t for d and measures latency from the schedule:
// request i is due at start + i/rate, and its latency is its completion minus that moment, so
// time a request waited to be sent counts (no coordinated omission).
func openLoop(ctx context.Context, t target, rate int, d time.Duration) (latency, error) {
	atk := vegeta.NewAttacker(vegeta.KeepAlive(true), vegeta.Connections(256), vegeta.Timeout(10*time.Second))
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var lats []time.Duration
	var errs int
	for r := range atk.Attack(targeter(t), vegeta.Rate{Freq: rate, Per: time.Second}, d, t.name) {
		if ctx.Err() != nil {
			atk.Stop()
		}
		due := start.Add(time.Duration(r.Seq) * interval)
		l := r.End().Sub(due)
		if l < r.Latency {
			l = r.Latency
		}
		lats = append(lats, l)
		if r.Code != 200 || r.Error != "" {
			errs++
		}
	}
	if len(lats) == 0 {
		return latency{}, fmt.Errorf("no results")
	}
	slices.Sort(lats)
	pct := func(p float64) time.Duration { return lats[min(len(lats)-1, int(p*float64(len(lats))))] }
	return latency{P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: lats[len(lats)-1], Requests: len(lats), Errors: errs}, nil
}

func targeter(t target) vegeta.Targeter {
	hdr := http.Header{}
	for k, v := range t.headers {
		hdr.Set(k, v)
	}
	return vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: t.url, Header: hdr})
}

// mintES256 signs a long-lived bench token for sub; the "full" role trusts the matching key.
func mintES256(key *ecdsa.PrivateKey, sub string) (string, error) {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": sub, "iss": benchIssuer, "aud": benchAudience, "iat": now.Unix(), "exp": now.Add(2 * time.Hour).Unix(), "roles": []string{"customer"},
	})
	tok.Header["kid"] = "bench"
	return tok.SignedString(key)
}

const (
	benchIssuer   = "https://bench.gatewaykit.invalid"
	benchAudience = "bench"
)
