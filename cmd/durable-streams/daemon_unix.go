//go:build unix

package main

import (
	"errors"
	"os"
	"syscall"
)

// detachAttr runs the daemon in a new session: no controlling terminal, so
// a ^C or a closed terminal of the shell that started it does not reach it.
func detachAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

// tryLock takes an exclusive flock on f without waiting; false means
// another process holds it.
func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// signalProcess sends sig to pid; signal 0 only checks that it exists.
func signalProcess(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }
