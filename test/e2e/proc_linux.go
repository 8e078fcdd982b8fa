package e2e

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts the server in its own process group (a ^C aimed at go
// test does not reach it directly; the harness stops it) and has the kernel
// SIGKILL it if the test binary dies without cleaning up (go test -timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killProcess SIGKILLs cmd's process group (the process and any children).
func killProcess(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		_ = cmd.Process.Kill()
	}
}
