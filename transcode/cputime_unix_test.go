//go:build unix

package transcode_test

import "syscall"

// processCPU returns the user+system CPU time the process has used, in microseconds. Under a loaded
// machine it is a steadier cost measure than wall time: waiting for a core does not count.
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec)*1e6 + float64(ru.Utime.Usec+ru.Stime.Usec)
}
