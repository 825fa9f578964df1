package docs

import (
	"fmt"
	"regexp"
	"strings"
)

// The guides mark each excerpt with a pair of HTML comments, which
// Markdown renderers hide:
//
//	<!-- gvs:excerpt dr/trace-syn -->
//	```text
//	... what the lab printed, normalised ...
//	```
//	<!-- gvs:end -->
//
// Everything between the markers belongs to the generator: make docs
// rewrites it, and the test compares it.

var (
	beginMarker = regexp.MustCompile(`^<!-- gvs:excerpt ([a-z0-9/-]+) -->$`)
	endMarker   = "<!-- gvs:end -->"
)

// A marked is one excerpt's place in a guide.
type marked struct {
	name  string
	line  int    // of the begin marker, from 1
	inner string // the text between the markers
}

// findMarked lists a guide's excerpts in order. A begin marker without
// its end, an end without a begin, a nested begin or a malformed name is
// an error naming the line.
func findMarked(doc string) ([]marked, error) {
	var out []marked
	lines := strings.SplitAfter(doc, "\n")
	open := -1
	var inner strings.Builder
	for i, line := range lines {
		text := strings.TrimRight(line, "\r\n")
		if trimmed := strings.TrimSpace(text); strings.HasPrefix(trimmed, "<!-- gvs:") && text != endMarker && !beginMarker.MatchString(text) {
			return nil, fmt.Errorf("line %d: malformed marker %q (want <!-- gvs:excerpt NAME --> or %s, at the start of a line)",
				i+1, trimmed, endMarker)
		}
		switch {
		case beginMarker.MatchString(text):
			if open >= 0 {
				return nil, fmt.Errorf("line %d: excerpt marker inside the excerpt opened on line %d", i+1, open+1)
			}
			open = i
			inner.Reset()
		case text == endMarker:
			if open < 0 {
				return nil, fmt.Errorf("line %d: %s without an excerpt marker before it", i+1, endMarker)
			}
			out = append(out, marked{name: beginMarker.FindStringSubmatch(strings.TrimRight(lines[open], "\r\n"))[1], line: open + 1, inner: inner.String()})
			open = -1
		case open >= 0:
			inner.WriteString(line)
		}
	}
	if open >= 0 {
		return nil, fmt.Errorf("line %d: excerpt marker without %s", open+1, endMarker)
	}
	return out, nil
}

// fenced is how an excerpt sits between its markers.
func fenced(text string) string { return "```text\n" + text + "```\n" }

// splice returns doc with every excerpt replaced by its text from
// excerpts; an excerpt it does not know is an error.
func splice(doc string, excerpts map[string]string) (string, error) {
	if _, err := findMarked(doc); err != nil {
		return "", err
	}
	var b strings.Builder
	lines := strings.SplitAfter(doc, "\n")
	inside := false
	for i, line := range lines {
		text := strings.TrimRight(line, "\r\n")
		switch {
		case beginMarker.MatchString(text):
			name := beginMarker.FindStringSubmatch(text)[1]
			ex, ok := excerpts[name]
			if !ok {
				return "", fmt.Errorf("line %d: no excerpt %q", i+1, name)
			}
			b.WriteString(line)
			b.WriteString(fenced(ex))
			inside = true
		case text == endMarker:
			b.WriteString(line)
			inside = false
		case !inside:
			b.WriteString(line)
		}
	}
	return b.String(), nil
}
