package arp

import "time"

// clock is the time source of a Resolver. Tests inject a manual clock so
// that retries, failures and refreshes are checked without waiting for
// wall-clock time.
type clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine (or, for a test clock, from
	// the goroutine that advances the time) once d has passed.
	AfterFunc(d time.Duration, f func()) timer
}

// timer is a pending AfterFunc call.
type timer interface {
	// Stop prevents the call if it has not started; it reports whether it
	// did.
	Stop() bool
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) timer { return time.AfterFunc(d, f) }
