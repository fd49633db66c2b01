package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Pinned versions: the committed code carries them in its header comments.
const (
	protocVersion     = "libprotoc 3.21.12"
	protocGenGo       = "google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
	protocGenGoGRPC   = "google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"
	protocGenGateway  = "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@v2.33.0"
	googleapisSetName = "googleapis.binpb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
}

func run() error {
	withGRPC := flag.Bool("grpc", true, "run protoc-gen-go-grpc")
	withGateway := flag.Bool("gateway", true, "run protoc-gen-grpc-gateway")
	flag.Parse()
	if flag.NArg() == 0 {
		return errors.New("no .proto files given")
	}
	out, err := exec.Command("protoc", "--version").Output()
	if err != nil {
		return fmt.Errorf("protoc not found (apt-get install -y protobuf-compiler): %w", err)
	}
	if got := strings.TrimSpace(string(out)); got != protocVersion {
		return fmt.Errorf("protoc is %q, want %q: the committed code would change", got, protocVersion)
	}
	tmp, err := os.MkdirTemp("", "protogen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	plugins := []string{protocGenGo}
	if *withGRPC {
		plugins = append(plugins, protocGenGoGRPC)
	}
	if *withGateway {
		plugins = append(plugins, protocGenGateway)
	}
	for _, p := range plugins {
		cmd := exec.Command("go", "install", p)
		cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=-mod=mod")
		cmd.Dir = tmp // outside any module, so @version installs exactly that version
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go install %s: %w", p, err)
		}
	}

	set := descriptorSet(annotations.File_google_api_annotations_proto)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(set)
	if err != nil {
		return err
	}
	setPath := filepath.Join(tmp, googleapisSetName)
	if err := os.WriteFile(setPath, b, 0o600); err != nil {
		return err
	}

	args := []string{
		"--descriptor_set_in=" + setPath,
		"--proto_path=.",
		"--plugin=protoc-gen-go=" + filepath.Join(tmp, "protoc-gen-go"),
		"--go_out=.", "--go_opt=paths=source_relative",
	}
	if *withGRPC {
		args = append(args, "--plugin=protoc-gen-go-grpc="+filepath.Join(tmp, "protoc-gen-go-grpc"),
			"--go-grpc_out=.", "--go-grpc_opt=paths=source_relative")
	}
	if *withGateway {
		args = append(args, "--plugin=protoc-gen-grpc-gateway="+filepath.Join(tmp, "protoc-gen-grpc-gateway"),
			"--grpc-gateway_out=.", "--grpc-gateway_opt=paths=source_relative")
	}
	cmd := exec.Command("protoc", append(args, flag.Args()...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// descriptorSet returns fd and its transitive imports, dependencies first, as protoc wants them.
func descriptorSet(fd protoreflect.FileDescriptor) *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		imps := f.Imports()
		for i := 0; i < imps.Len(); i++ {
			add(imps.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	add(fd)
	return set
}
