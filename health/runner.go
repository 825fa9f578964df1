package health

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"
)

// waitDelay bounds how long a killed command's output pipes are waited
// for (a grandchild that escaped the process group may hold them).
const waitDelay = time.Second

// DefaultRunner runs a command check's program directly (no shell), with
// gvs's environment plus env, in a process group of its own that is
// killed when ctx ends. Its exit status decides; the last bytes it wrote
// (standard output and error) explain a failure.
func DefaultRunner(ctx context.Context, argv, env []string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(cmd.Environ(), env...)
	var out tail
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = waitDelay
	setProcessGroup(cmd)
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return errors.New("timed out")
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if s := out.String(); s != "" {
			return fmt.Errorf("%v: %s", ee.ProcessState, s)
		}
		return errors.New(ee.ProcessState.String())
	}
	return err
}
