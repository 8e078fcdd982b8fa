//go:build !linux

package e2e

import (
	"os/exec"
	"syscall"
)

// Elsewhere the server is a plain child process (CI and development run Linux).
func sysProcAttr() *syscall.SysProcAttr { return nil }

func killProcess(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}
