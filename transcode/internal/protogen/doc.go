// Command protogen regenerates the Go code of gatewaykit's .proto files (run through go generate).
//
// grpc-gateway v2 no longer ships google/api/*.proto, so protogen writes the descriptors embedded in
// google.golang.org/genproto/googleapis/api/annotations (plus their imports) to a descriptor set in a
// temporary directory and hands it to protoc with --descriptor_set_in. The plugins are installed at
// pinned versions into the same temporary directory, so the output does not depend on what happens
// to be on PATH: only protoc itself (3.21.12, Debian's protobuf-compiler) comes from the machine.
//
// Usage (from the directory holding the .proto files' import root):
//
//	go run <path>/transcode/internal/protogen [-gateway] [-grpc] file.proto ...
package main
