package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// debianPackage is the Debian package of each command the baselines need.
var debianPackage = map[string]string{
	"nft":     "nftables",
	"haproxy": "haproxy",
	"wrk":     "wrk",
}

// installTimeout bounds one apt-get install (and its update).
const installTimeout = 5 * time.Minute

// policyRCD is Debian's hook that asks maintainer scripts not to start
// services (exit status 101: "action forbidden"), see invoke-rc.d(8):
// installing haproxy must not leave a daemon running on the host.
const policyRCD = "/usr/sbin/policy-rc.d"

// ensureCommand returns "" if the command is on $PATH, installing its
// Debian package with apt-get first if it is missing and install is set
// (the run is root); otherwise, or if that fails, it returns why the
// command is missing, for the report's skipped lines.
func ensureCommand(ctx context.Context, command, pkg string, install bool, progress func(string, ...any)) string {
	if _, err := exec.LookPath(command); err == nil {
		return ""
	}
	if !install {
		return fmt.Sprintf("the %s command is not installed (Debian package %s; --no-install given)", command, pkg)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Sprintf("the %s command is not installed, and there is no apt-get to install %s with", command, pkg)
	}
	progress("%s is missing: apt-get install -y %s", command, pkg)
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	// No service starts from the package's scripts, unless the machine
	// already has a policy of its own.
	if _, err := os.Stat(policyRCD); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(policyRCD, []byte("#!/bin/sh\n# gvs-bench: no service starts while it installs packages\nexit 101\n"), 0o755); err == nil {
			defer os.Remove(policyRCD)
		}
	}
	apt := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, lines[len(lines)-1])
		}
		return nil
	}
	installArgs := []string{"install", "-y", "--no-install-recommends", pkg}
	err := apt(installArgs...)
	if err != nil {
		// The package lists may be missing or stale.
		if uerr := apt("update"); uerr != nil {
			return fmt.Sprintf("the %s command is not installed, and installing %s failed: %v; %v", command, pkg, err, uerr)
		}
		err = apt(installArgs...)
	}
	if err != nil {
		return fmt.Sprintf("the %s command is not installed, and installing %s failed: %v", command, pkg, err)
	}
	if _, err := exec.LookPath(command); err != nil {
		return fmt.Sprintf("installed %s, but there is still no %s command on $PATH (%s)", pkg, command, os.Getenv("PATH"))
	}
	progress("installed %s", pkg)
	return ""
}
