//go:build !unix

package main

import (
	"errors"
	"os"
	"syscall"
)

var errNoDaemon = errors.New("the background server needs a Unix system; run durable-streams serve instead")

func detachAttr() *syscall.SysProcAttr { return nil }

func tryLock(*os.File) (bool, error) { return false, errNoDaemon }

func signalProcess(int, syscall.Signal) error { return errNoDaemon }
