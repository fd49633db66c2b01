package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// results is everything one run measured.
type results struct {
	Machine      string
	Tool         string
	Started      time.Time
	Finished     time.Time
	Rounds       int
	Conns        int
	Duration     time.Duration
	OpenDuration time.Duration
	Rates        []int
	Targets      []target `json:"-"`
	// TargetNames lists the targets in measurement order (Targets is not serialized).
	TargetNames []string
	// Closed holds req/s per target, one value per round, in round order.
	Closed map[string][]float64
	// Open holds open-loop latencies per target and rate, one per round.
	Open map[string]map[int][]latency
}

func (r *results) addClosed(name string, rps float64) {
	if r.Closed == nil {
		r.Closed = map[string][]float64{}
	}
	r.Closed[name] = append(r.Closed[name], rps)
}

func (r *results) addOpen(name string, rate int, l latency) {
	if r.Open == nil {
		r.Open = map[string]map[int][]latency{}
	}
	if r.Open[name] == nil {
		r.Open[name] = map[int][]latency{}
	}
	r.Open[name][rate] = append(r.Open[name][rate], l)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratios returns, per round, name's throughput divided by base's in the same round.
func (r *results) ratios(name, base string) []float64 {
	a, b := r.Closed[name], r.Closed[base]
	out := make([]float64, 0, len(a))
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// medianLatency is the per-percentile median over rounds.
func medianLatency(ls []latency) latency {
	pick := func(f func(latency) time.Duration) time.Duration {
		xs := make([]float64, len(ls))
		for i, l := range ls {
			xs[i] = float64(f(l))
		}
		return time.Duration(median(xs))
	}
	var reqs, errs int
	for _, l := range ls {
		reqs += l.Requests
		errs += l.Errors
	}
	return latency{P50: pick(func(l latency) time.Duration { return l.P50 }), P90: pick(func(l latency) time.Duration { return l.P90 }),
		P99: pick(func(l latency) time.Duration { return l.P99 }), Max: pick(func(l latency) time.Duration { return l.Max }), Requests: reqs, Errors: errs}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }

func (r *results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s. %s.\n\n", r.Machine, r.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Closed loop: %s, 1 thread, %d connections, %s per target per round, %d interleaved rounds; "+
		"median req/s and the median of per-round ratios to the bare `httputil.ReverseProxy`.\n\n", r.Tool, r.Conns, r.Duration, r.Rounds)
	b.WriteString("| target | what | req/s (median) | x bare (median of rounds) | per-round x bare |\n|---|---|---:|---:|---|\n")
	for _, t := range r.Targets {
		rs := r.ratios(t.name, "bare")
		per := make([]string, len(rs))
		for i, x := range rs {
			per[i] = fmt.Sprintf("%.2f", x)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.2f | %s |\n", t.name, t.desc, median(r.Closed[t.name]), median(rs), strings.Join(per, " "))
	}
	fmt.Fprintf(&b, "\nOpen loop (vegeta, latency from the scheduled send time, %s per target per rate, median over rounds), milliseconds:\n\n", r.OpenDuration)
	b.WriteString("| target | rate/s | p50 | p90 | p99 | max | errors |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, rate := range r.Rates {
		for _, t := range r.Targets {
			l := medianLatency(r.Open[t.name][rate])
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %d/%d |\n", t.name, rate, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), l.Errors, l.Requests)
		}
	}
	return b.String()
}

// write saves results.md, results.json, throughput.png and latency.png into a timestamped folder
// under dir and copies them to dir/latest-*.
func (r *results) write(dir string) (string, error) {
	out := filepath.Join(dir, r.Started.Format("20060102-150405"))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	files := map[string][]byte{"results.md": []byte(r.markdown())}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	files["results.json"] = js
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(out, name), b, 0o644); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "latest-"+name), b, 0o644); err != nil {
			return "", err
		}
	}
	if err := r.throughputChart(filepath.Join(out, "throughput.png")); err != nil {
		return "", err
	}
	if err := r.latencyChart(filepath.Join(out, "latency.png")); err != nil {
		return "", err
	}
	for _, name := range []string{"throughput.png", "latency.png"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "latest-"+name), b, 0o644); err != nil {
			return "", err
		}
	}
	return out, nil
}

func (r *results) throughputChart(path string) error {
	p := plot.New()
	p.Title.Text = "Closed-loop throughput relative to a bare httputil.ReverseProxy (median of rounds)"
	p.Y.Label.Text = "x bare ReverseProxy"
	vals := make(plotter.Values, len(r.Targets))
	names := make([]string, len(r.Targets))
	for i, t := range r.Targets {
		vals[i] = median(r.ratios(t.name, "bare"))
		names[i] = t.name
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(28))
	if err != nil {
		return err
	}
	bars.Color = plotutil.Color(0)
	p.Add(bars, plotter.NewGrid())
	p.NominalX(names...)
	return p.Save(9*vg.Inch, 4*vg.Inch, path)
}

func (r *results) latencyChart(path string) error {
	p := plot.New()
	p.Title.Text = "Open-loop latency vs offered load (median of rounds, log scale)"
	p.X.Label.Text = "offered load (req/s)"
	p.Y.Label.Text = "latency (ms)"
	p.Y.Scale = plot.LogScale{} // a saturated target is 1000x slower: a linear axis hides the rest
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	var lines []any
	for _, t := range r.Targets {
		for _, q := range []struct {
			name string
			f    func(latency) time.Duration
		}{{"p50", func(l latency) time.Duration { return l.P50 }}, {"p99", func(l latency) time.Duration { return l.P99 }}} {
			pts := make(plotter.XYs, 0, len(r.Rates))
			for _, rate := range r.Rates {
				pts = append(pts, plotter.XY{X: float64(rate), Y: max(0.01, float64(q.f(medianLatency(r.Open[t.name][rate])))/1e6)})
			}
			lines = append(lines, t.name+" "+q.name, pts)
		}
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p.Save(9*vg.Inch, 5*vg.Inch, path)
}

// replot redraws the charts of a finished run from its results.json, into the same folder.
func replot(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	names := r.TargetNames
	if len(names) == 0 { // runs before TargetNames existed: the harness's order
		for _, n := range []string{"direct", "bare", "bare-transport", "bare-tuned", "gkproxy", "full", "nginx", "caddy"} {
			if _, ok := r.Closed[n]; ok {
				names = append(names, n)
			}
		}
	}
	for _, n := range names {
		r.Targets = append(r.Targets, target{name: n})
	}
	if err := r.throughputChart(filepath.Join(dir, "throughput.png")); err != nil {
		return err
	}
	return r.latencyChart(filepath.Join(dir, "latency.png"))
}
