package bench

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"os"
	"slices"
)

// The chart's geometry, in SVG user units (pixels at 100%).
const (
	svgWidth      = 960
	svgHeight     = 480
	svgLeft       = 80 // room for the y axis labels
	svgRight      = 20
	svgTop        = 50 // the title
	svgBottom     = 90 // group labels and the legend
	svgGroupSpace = 0.25
)

// svgPalette colours the paths, in order (colour-blind safe: Okabe–Ito).
var svgPalette = []string{"#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#F0E442"}

// chart draws delivered pps as grouped bars: one group per frame size and
// flow count, one bar per path, with the min–max of the runs as a whisker.
// It is written by hand: a few rectangles and lines need no library.
func chart(rep *Report) []byte {
	type group struct{ size, flows int }
	var groups []group
	var paths []string
	for _, r := range rep.Results {
		if g := (group{r.Size, r.Flows}); !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
		if !slices.Contains(paths, r.Path) {
			paths = append(paths, r.Path)
		}
	}
	top := 0.0
	for _, r := range rep.Results {
		top = math.Max(top, r.PPS.Max)
	}
	step := niceStep(top / 5)
	top = math.Max(step, math.Ceil(top/step)*step)

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, svgHeight, svgWidth, svgHeight)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	runs := fmt.Sprintf("%d runs", rep.Config.Repeats)
	if rep.Config.Repeats == 1 {
		runs = "1 run"
	}
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold">Delivered packets/s (median; whiskers: min–max of %s)</text>`+"\n", svgLeft, runs)
	fmt.Fprintf(&b, `<text x="%d" y="42" fill="#555">%s, %d CPUs, %s</text>`+"\n", svgLeft, html.EscapeString(rep.Host.Kernel), rep.Host.CPUs, html.EscapeString(rep.Started))
	plotW := float64(svgWidth - svgLeft - svgRight)
	plotH := float64(svgHeight - svgTop - svgBottom)
	y := func(v float64) float64 { return float64(svgTop) + plotH*(1-v/top) }
	for v := 0.0; v <= top+step/2; v += step {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", svgLeft, svgWidth-svgRight, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", svgLeft-6, y(v), fmtPPS(v))
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="black"/>`+"\n", svgLeft, svgWidth-svgRight, y(0), y(0))
	if len(groups) > 0 && len(paths) > 0 {
		gw := plotW / float64(len(groups))
		bw := gw * (1 - svgGroupSpace) / float64(len(paths))
		for gi, g := range groups {
			x0 := float64(svgLeft) + gw*float64(gi) + gw*svgGroupSpace/2
			for pi, p := range paths {
				i := slices.IndexFunc(rep.Results, func(r Result) bool { return r.Path == p && r.Size == g.size && r.Flows == g.flows })
				if i < 0 {
					continue
				}
				r := rep.Results[i]
				x := x0 + bw*float64(pi)
				colour := svgPalette[pi%len(svgPalette)]
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %d B %s flows: %s pps</title></rect>`+"\n",
					x+1, y(r.PPS.Median), bw-2, y(0)-y(r.PPS.Median), colour, html.EscapeString(p), g.size, fmtCount(g.flows), fmtPPS(r.PPS.Median))
				cx := x + bw/2
				fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#444"/>`+"\n", cx, cx, y(r.PPS.Min), y(r.PPS.Max))
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", cx, y(r.PPS.Max)-4, fmtPPS(r.PPS.Median))
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%d-byte frames, %s flows</text>`+"\n", float64(svgLeft)+gw*(float64(gi)+0.5), y(0)+18, g.size, fmtCount(g.flows))
		}
	}
	lx, ly := float64(svgLeft), float64(svgHeight-40)
	for pi, p := range paths {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="12" height="12" fill="%s"/><text x="%.1f" y="%.1f">%s</text>`+"\n",
			lx, ly, svgPalette[pi%len(svgPalette)], lx+16, ly+10, html.EscapeString(p))
		lx += 30 + 8*float64(len(p))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// niceStep rounds a grid step up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// writeSVG writes the chart to file.
func writeSVG(file string, rep *Report) error {
	return os.WriteFile(file, chart(rep), 0o644)
}
