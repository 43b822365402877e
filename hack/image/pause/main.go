// Command pause is the real node's pod sandbox ("pause") process: it holds the pod's namespaces,
// reaps zombies (it is PID 1 when the pod shares its PID namespace) and exits 0 on SIGTERM or
// SIGINT. Built static by hack/image/pause.sh and packaged as mlfootprint.local/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			for {
				var status syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
