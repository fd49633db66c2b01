package transcode

import (
	"bytes"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/gatewaykit/gatewaykit/transcode/internal/testpb"
)

var echoRequestType = dynamicpb.NewMessageType((&testpb.EchoRequest{}).ProtoReflect().Descriptor())

func field(name string) protoreflect.FieldDescriptor {
	return echoRequestType.Descriptor().Fields().ByName(protoreflect.Name(name))
}

// FuzzJSONToMessage feeds arbitrary bodies to the dynamic body decoder, whole-message and
// single-field. It must never panic; whole-message decoding must agree with protojson on the
// generated type; whatever decodes must re-encode and decode to an equal message.
func FuzzJSONToMessage(f *testing.F) {
	for _, s := range []string{
		`{}`, ``, `   `, `{"id":"x","count":5,"big":"9007199254740993","flag":true,"ratio":0.5}`,
		`{"color":"COLOR_RED","tags":["a","b"],"label":{"key":"k","value":"v"}}`,
		`{"at":"2024-01-02T03:04:05Z","blob":"aGk=","small":7,"weight":"NaN"}`,
		`{"count":"many"}`, `{"nope":1}`, `[1,2]`, `["a"], "id": "x"`, `{"label":null}`, `{"count":1e3}`,
		`{"id":"\ud800"}`, `{"tags":[null]}`, `{"id":"a","id":"b"}`, `{"at":"not a time"}`, `"s"`, `null`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, discard bool) {
		d := bodyDecoder{opts: protojson.UnmarshalOptions{DiscardUnknown: discard}}
		m := echoRequestType.New()
		err := d.decode(body, m, nil)
		var gen testpb.EchoRequest
		genErr := d.opts.Unmarshal(body, &gen)
		if jsonBlank(body) {
			genErr = nil
		}
		if (err == nil) != (genErr == nil) {
			t.Fatalf("dynamic err=%v, generated err=%v for %q", err, genErr, body)
		}
		if err == nil {
			roundTrip(t, d, m, nil)
		}
		// Static mode's decoder (grpc-gateway's JSONPb plus the trailing-data check): whatever it
		// accepts, protojson accepts too, with the same result.
		sm := &jsonMarshaler{JSONPb: runtime.JSONPb{UnmarshalOptions: d.opts}}
		var viaGateway testpb.EchoRequest
		if err := sm.NewDecoder(bytes.NewReader(body)).Decode(&viaGateway); err == nil {
			var direct testpb.EchoRequest
			if err := d.opts.Unmarshal(body, &direct); err != nil || !proto.Equal(&direct, &viaGateway) {
				t.Fatalf("static decoder accepted %q, protojson: %v", body, err)
			}
		}
		for _, name := range []string{"tags", "label", "count", "at"} {
			m := echoRequestType.New()
			if err := d.decode(body, m, field(name)); err == nil {
				roundTrip(t, d, m, nil)
			} else if _, ok := err.(*bindError); !ok {
				t.Fatalf("error %T is not client-safe", err)
			}
		}
	})
}

func roundTrip(t *testing.T, d bodyDecoder, m protoreflect.Message, f protoreflect.FieldDescriptor) {
	t.Helper()
	out, err := protojson.Marshal(m.Interface())
	if err != nil {
		t.Fatalf("decoded message does not encode: %v", err)
	}
	m2 := echoRequestType.New()
	if err := d.decode(out, m2, f); err != nil {
		t.Fatalf("re-decode %s: %v", out, err)
	}
	if !proto.Equal(m.Interface(), m2.Interface()) {
		t.Fatalf("round trip changed the message: %s", out)
	}
}

// FuzzParseValue sets every kind of field of EchoRequest from an arbitrary string (path and query
// binding): never a panic, and a value that is accepted encodes.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"", "1", "-1", "4294967296", "true", "x", "COLOR_RED", "2", "NaN", "Infinity",
		"1e40", "aGk=", "aGk", "2024-01-02T03:04:05Z", "\xff", "9223372036854775808"} {
		f.Add(s)
	}
	fields := echoRequestType.Descriptor().Fields()
	f.Fuzz(func(t *testing.T, s string) {
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			if !scalarLeaf(fd) {
				continue
			}
			m := echoRequestType.New()
			if err := setPath(m, []protoreflect.FieldDescriptor{fd}, []string{s}, string(fd.Name())); err != nil {
				if _, ok := err.(*bindError); !ok {
					t.Fatalf("error %T is not client-safe", err)
				}
				continue
			}
			if _, err := protojson.Marshal(m.Interface()); err != nil && fd.Kind() != protoreflect.MessageKind {
				t.Fatalf("%s=%q accepted but does not encode: %v", fd.Name(), s, err)
			}
		}
	})
}

func TestParseValue(t *testing.T) {
	tests := []struct {
		field, in string
		ok        bool
	}{
		{"count", "12", true}, {"count", "2147483648", false}, {"count", "1.5", false},
		{"big", "-9223372036854775808", true}, {"small", "-1", false}, {"flag", "1", true}, {"flag", "yes", false},
		{"ratio", "Infinity", true}, {"ratio", "1e400", false}, {"weight", "3.5", true},
		{"color", "COLOR_BLUE", true}, {"color", "2", true}, {"color", "7", false},
		{"blob", "aGk", true}, {"blob", "!!", false}, {"id", "\xff", false},
		{"at", "2024-01-02T03:04:05Z", true}, {"at", "yesterday", false}, {"tags", "a", true},
	}
	for _, tc := range tests {
		m := echoRequestType.New()
		fd := field(tc.field)
		err := setPath(m, []protoreflect.FieldDescriptor{fd}, []string{tc.in}, tc.field)
		if (err == nil) != tc.ok {
			t.Errorf("%s=%q: err %v, want ok=%v", tc.field, tc.in, err, tc.ok)
		}
	}
}
