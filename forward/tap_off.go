//go:build notrace

package forward

// tapCompiled: this build has no tap (-tags notrace).
const tapCompiled = false

// tapped is always nil: the compiler drops the branch on it from batch.
func (e *Engine) tapped() *tapHolder { return nil }
