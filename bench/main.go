package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	role      string
	addr      string
	upstreams string
	short     bool
	rounds    int
	duration  time.Duration
	openDur   time.Duration
	conns     int
	rates     []int
	out       string
	only      string
	replot    string
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "", "internal: run as a target process (backend, bare, gkproxy, full)")
	flag.StringVar(&o.addr, "addr", "", "internal: listen address for -role")
	flag.StringVar(&o.upstreams, "upstreams", "", "internal: comma-separated backend addresses for -role")
	flag.BoolVar(&o.short, "short", false, "quick run: 2 rounds of 3 s closed loop and 3 s per open-loop rate")
	flag.IntVar(&o.rounds, "rounds", 5, "interleaved rounds (A B C ... A B C ...)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "closed-loop duration per target per round")
	flag.DurationVar(&o.openDur, "open-duration", 10*time.Second, "open-loop duration per target per rate")
	flag.IntVar(&o.conns, "conns", 32, "closed-loop connections")
	flag.StringVar(&o.out, "out", "bench/results", "results folder")
	flag.StringVar(&o.only, "only", "", "comma-separated target names to run (default: all available)")
	flag.StringVar(&o.replot, "replot", "", "redraw the charts of a finished run from DIR/results.json, and exit")
	flag.Parse()
	o.rates = []int{1000, 5000}
	if o.short {
		o.rounds, o.duration, o.openDur = 2, 3*time.Second, 3*time.Second
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.replot != "" {
		if err := replot(o.replot); err != nil {
			log.Fatalf("bench -replot: %v", err)
		}
		return
	}
	if o.role != "" {
		if err := runRole(ctx, o); err != nil {
			log.Fatalf("bench -role %s: %v", o.role, err)
		}
		return
	}
	if err := runHarness(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
