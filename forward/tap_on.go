//go:build !notrace

package forward

// tapCompiled: this build has the tap (build with -tags notrace to
// compile it out, for comparison benchmarks).
const tapCompiled = true

// tapped returns the engine's tap, or nil: one atomic load, read once per
// batch.
func (e *Engine) tapped() *tapHolder { return e.tap.Load() }
