package docs

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/gvs-project/gvs/lab"
)

// checkFacts checks, on the runs' raw output, what the guides say about
// values the excerpts show only as placeholders.
func checkFacts(runs map[lab.Mode]*Run) error {
	var errs []error
	// "Taking one off the TTL adds 0x0100 to the IP checksum" (RFC 1624:
	// the TTL is the high byte of its 16-bit word), in DR and for TUN's
	// inner header.
	for m, field := range map[lab.Mode]string{lab.DR: "ip.sum", lab.TUN: "inner ip.sum"} {
		r := runs[m]
		if r == nil {
			continue
		}
		if err := r.ttlSum(field); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
		}
	}
	// "A SYN_RECV entry lives at most a minute."
	if r := runs[lab.DR]; r != nil {
		if err := r.synRecvExpire(); err != nil {
			errs = append(errs, fmt.Errorf("dr: %w", err))
		}
	}
	return errors.Join(errs...)
}

var sumLine = regexp.MustCompile(`^\s+(inner ip\.sum|ip\.sum)\s+0x([0-9a-f]+) -> 0x([0-9a-f]+)$`)

// ttlSum checks the first connection's SYN's checksum change: +0x0100 in
// ones' complement arithmetic, as the TTL went from 64 to 63.
func (r *Run) ttlSum(field string) error {
	block, err := r.traceBlock(0, "[SYN] -> forwarded")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(block, "\n") {
		m := sumLine.FindStringSubmatch(line)
		if m == nil || m[1] != field {
			continue
		}
		before, _ := strconv.ParseUint(m[2], 16, 32)
		after, _ := strconv.ParseUint(m[3], 16, 32)
		want := before + 0x0100
		want = want&0xffff + want>>16
		if after != want && !(want == 0xffff && after == 0) {
			return fmt.Errorf("the SYN's %s went %#04x -> %#04x, want %#04x (+0x0100 for the TTL)", field, before, after, want)
		}
		return nil
	}
	return fmt.Errorf("the SYN's trace has no %s line:\n%s", field, block)
}

var synRecvRow = regexp.MustCompile(`(?m)^\s*TCP (\d\d):(\d\d)\s+SYN_RECV\s`)

// synRecvExpire checks the SYN_RECV entry's countdown: at most 60 s.
func (r *Run) synRecvExpire() error {
	body, err := r.step(stepSynRecv, false)
	if err != nil {
		return err
	}
	m := synRecvRow.FindStringSubmatch(body)
	if m == nil {
		return fmt.Errorf("no SYN_RECV entry in:\n%s", body)
	}
	min, _ := strconv.Atoi(m[1])
	sec, _ := strconv.Atoi(m[2])
	if s := min*60 + sec; s > 60 {
		return fmt.Errorf("the SYN_RECV entry expires in %d s, want at most 60 (IPVS's timeout for SYN_RECV)", s)
	}
	return nil
}
