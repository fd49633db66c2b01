// Package proto holds the example gateway's .proto sources; the generated Go code lives in the
// subdirectories and is committed, so building needs no protoc. To regenerate it byte for byte,
// install protoc 3.21.12 (apt-get install -y protobuf-compiler) and run go generate here: the
// pinned plugins are installed by transcode/internal/protogen.
package proto

//go:generate go run ../../transcode/internal/protogen users/v1/users.proto
