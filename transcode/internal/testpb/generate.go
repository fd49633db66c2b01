// Package testpb is the generated code of the test service package transcode serves in its tests.
// Regenerate with go generate (needs protoc 3.21.12; see transcode/internal/protogen).
package testpb

//go:generate go run ../protogen common.proto echo.proto
