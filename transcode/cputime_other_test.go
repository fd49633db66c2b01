//go:build !unix

package transcode_test

func processCPU() float64 { return 0 }
