package transcode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/bufbuild/protocompile"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Source provides the service descriptors of a dynamic Transcoder: .proto sources compiled at
// start-up (ProtoFiles, ProtoFS) or a binary FileDescriptorSet (DescriptorSet). Build one with
// those functions; the zero Source is invalid.
type Source struct {
	name string
	load func(ctx context.Context) ([]byte, error)
}

// ProtoFiles compiles the named .proto files, found relative to importPath, with protocompile.
// Imports are resolved from importPath first, then from the descriptors compiled into the binary:
// the google/protobuf well-known types and google/api/{annotations,http,httpbody,client,
// field_behavior,resource}.proto, so those need not be shipped. Errors name the file and line.
func ProtoFiles(importPath string, files ...string) Source {
	s := ProtoFS(os.DirFS(importPath), files...)
	s.name = fmt.Sprintf("proto files %q in %s", files, importPath)
	return s
}

// ProtoFS is ProtoFiles over a file system (embed.FS, fstest.MapFS, os.DirFS, ...).
func ProtoFS(fsys fs.FS, files ...string) Source {
	return Source{name: fmt.Sprintf("proto files %q", files), load: func(ctx context.Context) ([]byte, error) {
		if fsys == nil || len(files) == 0 {
			return nil, errors.New("no .proto files given")
		}
		c := protocompile.Compiler{SourceInfoMode: protocompile.SourceInfoStandard, Resolver: protocompile.CompositeResolver{
			&protocompile.SourceResolver{Accessor: func(path string) (io.ReadCloser, error) { return fsys.Open(path) }},
			protocompile.ResolverFunc(googleAPIs),
			protocompile.WithStandardImports(protocompile.ResolverFunc(func(string) (protocompile.SearchResult, error) {
				return protocompile.SearchResult{}, protoregistry.NotFound
			})),
		}}
		linked, err := c.Compile(ctx, files...)
		if err != nil {
			return nil, err // protocompile's errors read "file.proto:12:5: message"
		}
		set := &descriptorpb.FileDescriptorSet{}
		seen := map[string]bool{}
		for _, f := range linked {
			addFile(set, seen, f)
		}
		// The options of protocompile's descriptors hold extensions of its own dynamic types, on which
		// proto.GetExtension(opts, annotations.E_Http) panics: serialize the set and parse it again
		// with a resolver that knows google.api.http (in load).
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(set)
		return b, err
	}}
}

// DescriptorSet uses a serialized google.protobuf.FileDescriptorSet (protoc --descriptor_set_out
// with --include_imports, or buf build -o). It must hold every imported file.
func DescriptorSet(b []byte) Source {
	return Source{name: "descriptor set", load: func(context.Context) ([]byte, error) {
		if len(b) == 0 {
			return nil, errors.New("empty descriptor set")
		}
		return b, nil
	}}
}

// googleAPIs resolves the google/api files whose descriptors are compiled into genproto.
func googleAPIs(path string) (protocompile.SearchResult, error) {
	var fd protoreflect.FileDescriptor
	switch path {
	case "google/api/annotations.proto":
		fd = annotations.File_google_api_annotations_proto
	case "google/api/http.proto":
		fd = annotations.File_google_api_http_proto
	case "google/api/client.proto":
		fd = annotations.File_google_api_client_proto
	case "google/api/field_behavior.proto":
		fd = annotations.File_google_api_field_behavior_proto
	case "google/api/resource.proto":
		fd = annotations.File_google_api_resource_proto
	case "google/api/httpbody.proto":
		fd = httpbody.File_google_api_httpbody_proto
	default:
		return protocompile.SearchResult{}, protoregistry.NotFound
	}
	return protocompile.SearchResult{Desc: fd}, nil
}

func addFile(set *descriptorpb.FileDescriptorSet, seen map[string]bool, f protoreflect.FileDescriptor) {
	if seen[f.Path()] {
		return
	}
	seen[f.Path()] = true
	imps := f.Imports()
	for i := 0; i < imps.Len(); i++ {
		addFile(set, seen, imps.Get(i).FileDescriptor)
	}
	set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
}

// files returns the source's files, with the options parsed against a resolver that knows the
// google.api.http extension.
func (s Source) files(ctx context.Context) (*protoregistry.Files, error) {
	if s.load == nil {
		return nil, errors.New("transcode: zero Source (use ProtoFiles, ProtoFS or DescriptorSet)")
	}
	b, err := s.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("transcode: %s: %w", s.name, err)
	}
	types := new(protoregistry.Types)
	if err := types.RegisterExtension(annotations.E_Http); err != nil {
		return nil, fmt.Errorf("transcode: %w", err)
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := (proto.UnmarshalOptions{Resolver: types}).Unmarshal(b, set); err != nil {
		return nil, fmt.Errorf("transcode: %s: parse descriptor set: %w", s.name, err)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("transcode: %s: %w", s.name, err)
	}
	return files, nil
}

// httpRule returns the method's google.api.http rule, or nil.
func httpRule(m protoreflect.MethodDescriptor) *annotations.HttpRule {
	opts, ok := m.Options().(*descriptorpb.MethodOptions)
	if !ok || opts == nil || !proto.HasExtension(opts, annotations.E_Http) {
		return nil
	}
	rule, _ := proto.GetExtension(opts, annotations.E_Http).(*annotations.HttpRule)
	return rule
}
