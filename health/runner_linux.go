package health

import (
	"os/exec"
	"syscall"
)

// setProcessGroup runs cmd in a process group of its own and makes the
// context's end kill the whole group, so that a check script's children
// do not outlive its timeout.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
