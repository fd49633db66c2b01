package transcode

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// bindError is a client error while building the request message; msg is safe to send.
type bindError struct{ msg string }

func (e *bindError) Error() string { return e.msg }

func badRequest(format string, args ...any) error { return &bindError{fmt.Sprintf(format, args...)} }

// clip shortens client-supplied text echoed in an error.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}

// fieldPath resolves a dotted path of proto or JSON names: every element but the last is a singular
// message field.
func fieldPath(md protoreflect.MessageDescriptor, names []string) ([]protoreflect.FieldDescriptor, error) {
	path := make([]protoreflect.FieldDescriptor, 0, len(names))
	for i, n := range names {
		fields := md.Fields()
		fd := fields.ByName(protoreflect.Name(n))
		if fd == nil {
			fd = fields.ByJSONName(n)
		}
		if fd == nil {
			return nil, fmt.Errorf("no field %q in %s", n, md.FullName())
		}
		path = append(path, fd)
		if i < len(names)-1 {
			if fd.Message() == nil || fd.IsList() || fd.IsMap() {
				return nil, fmt.Errorf("field %q of %s is not a singular message", n, md.FullName())
			}
			md = fd.Message()
		}
	}
	return path, nil
}

// scalarLeaf reports whether a field can be set from one string: a non-map scalar or enum, or a
// well-known type with a string JSON form.
func scalarLeaf(fd protoreflect.FieldDescriptor) bool {
	if fd.IsMap() {
		return false
	}
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		return stringWKT(fd.Message().FullName())
	}
	return true
}

func stringWKT(n protoreflect.FullName) bool {
	switch n {
	case "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask",
		"google.protobuf.StringValue", "google.protobuf.BytesValue", "google.protobuf.BoolValue",
		"google.protobuf.Int32Value", "google.protobuf.Int64Value", "google.protobuf.UInt32Value",
		"google.protobuf.UInt64Value", "google.protobuf.FloatValue", "google.protobuf.DoubleValue":
		return true
	}
	return false
}

// setPath sets the field at path in m from the string values (several only for a repeated leaf).
func setPath(m protoreflect.Message, path []protoreflect.FieldDescriptor, values []string, display string) error {
	for _, fd := range path[:len(path)-1] {
		m = m.Mutable(fd).Message()
	}
	fd := path[len(path)-1]
	if !fd.IsList() {
		if len(values) != 1 {
			return badRequest("parameter %s is given more than once", clip(display))
		}
		v, err := parseValue(m, fd, values[0])
		if err != nil {
			return badRequest("parameter %s: %v", clip(display), err)
		}
		m.Set(fd, v)
		return nil
	}
	list := m.Mutable(fd).List()
	for _, s := range values {
		v, err := parseValue(m, fd, s)
		if err != nil {
			return badRequest("parameter %s: %v", clip(display), err)
		}
		list.Append(v)
	}
	return nil
}

// parseValue parses s as a value of fd's kind (for a list, of its elements). The error is safe to send.
func parseValue(parent protoreflect.Message, fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if !utf8.ValidString(s) {
			return protoreflect.Value{}, errors.New("not valid UTF-8")
		}
		return protoreflect.ValueOfString(s), nil
	case protoreflect.BoolKind:
		switch s {
		case "true", "1":
			return protoreflect.ValueOfBool(true), nil
		case "false", "0":
			return protoreflect.ValueOfBool(false), nil
		}
		return protoreflect.Value{}, errors.New("not a boolean")
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return protoreflect.Value{}, errors.New("not a 32-bit integer")
		}
		return protoreflect.ValueOfInt32(int32(n)), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return protoreflect.Value{}, errors.New("not a 64-bit integer")
		}
		return protoreflect.ValueOfInt64(n), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return protoreflect.Value{}, errors.New("not an unsigned 32-bit integer")
		}
		return protoreflect.ValueOfUint32(uint32(n)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return protoreflect.Value{}, errors.New("not an unsigned 64-bit integer")
		}
		return protoreflect.ValueOfUint64(n), nil
	case protoreflect.FloatKind:
		f, err := parseFloat(s, 32)
		if err != nil {
			return protoreflect.Value{}, err
		}
		return protoreflect.ValueOfFloat32(float32(f)), nil
	case protoreflect.DoubleKind:
		f, err := parseFloat(s, 64)
		if err != nil {
			return protoreflect.Value{}, err
		}
		return protoreflect.ValueOfFloat64(f), nil
	case protoreflect.BytesKind:
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(s); err == nil {
				return protoreflect.ValueOfBytes(b), nil
			}
		}
		return protoreflect.Value{}, errors.New("not base64")
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if v := vals.ByName(protoreflect.Name(s)); v != nil {
			return protoreflect.ValueOfEnum(v.Number()), nil
		}
		if n, err := strconv.ParseInt(s, 10, 32); err == nil && vals.ByNumber(protoreflect.EnumNumber(n)) != nil {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), nil
		}
		return protoreflect.Value{}, errors.New("not a value of the enum")
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if !stringWKT(fd.Message().FullName()) {
			return protoreflect.Value{}, errors.New("a message cannot be set from a string")
		}
		var msg protoreflect.Message
		if fd.IsList() {
			msg = parent.Mutable(fd).List().NewElement().Message()
		} else {
			msg = parent.NewField(fd).Message()
		}
		q, _ := json.Marshal(s)
		if err := protojson.Unmarshal(q, msg.Interface()); err != nil {
			// Numeric and boolean wrappers take a bare JSON literal.
			if err2 := protojson.Unmarshal([]byte(s), msg.Interface()); err2 != nil || !jsonLiteral(s) {
				return protoreflect.Value{}, fmt.Errorf("not a valid %s", fd.Message().Name())
			}
		}
		return protoreflect.ValueOfMessage(msg), nil
	}
	return protoreflect.Value{}, errors.New("unsupported field kind")
}

func parseFloat(s string, bits int) (float64, error) {
	switch s {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	f, err := strconv.ParseFloat(s, bits)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, errors.New("not a number")
	}
	return f, nil
}

// jsonLiteral reports whether s is a bare JSON number or boolean.
func jsonLiteral(s string) bool {
	if s == "true" || s == "false" {
		return true
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// bodyDecoder decodes JSON request bodies into messages.
type bodyDecoder struct {
	opts protojson.UnmarshalOptions
}

// decode unmarshals body into m whole (field nil) or into the top-level field. An empty body leaves
// m unchanged.
func (d bodyDecoder) decode(body []byte, m protoreflect.Message, field protoreflect.FieldDescriptor) error {
	if jsonBlank(body) {
		return nil
	}
	switch {
	case field == nil:
		return d.classify(body, m.Interface(), d.opts.Unmarshal(body, m.Interface()))
	case field.Message() != nil && !field.IsList() && !field.IsMap():
		sub := m.Mutable(field).Message()
		return d.classify(body, sub.Interface(), d.opts.Unmarshal(body, sub.Interface()))
	default:
		// A repeated, map or scalar field: decode {"<field>": body} into a fresh message and move the
		// field over. json.Valid first, so the body is one value and cannot add members.
		if !json.Valid(body) {
			return badRequest("The request body is not valid JSON.")
		}
		tmp := m.Type().New()
		name, _ := json.Marshal(field.JSONName())
		wrapped := make([]byte, 0, len(body)+len(name)+3)
		wrapped = append(append(append(append(wrapped, '{'), name...), ':'), body...)
		wrapped = append(wrapped, '}')
		if err := d.opts.Unmarshal(wrapped, tmp.Interface()); err != nil {
			return d.classify(wrapped, tmp.Interface(), err)
		}
		if tmp.Has(field) { // an unset list or map is an empty read-only value: Set would panic
			m.Set(field, tmp.Get(field))
		} else {
			m.Clear(field)
		}
		return nil
	}
}

// jsonBlank reports whether b is empty or only JSON whitespace (not every Unicode space: "\f" is
// malformed JSON, not an empty body).
func jsonBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// classify turns a protojson error into a client-safe one, telling unknown fields apart.
func (d bodyDecoder) classify(body []byte, m interface{ ProtoReflect() protoreflect.Message }, err error) error {
	if err == nil {
		return nil
	}
	if !d.opts.DiscardUnknown {
		lenient := d.opts
		lenient.DiscardUnknown = true
		if lenient.Unmarshal(body, m.ProtoReflect().Type().New().Interface()) == nil {
			return badRequest("The request body has a field the method does not accept.")
		}
	}
	if !json.Valid(body) {
		return badRequest("The request body is not valid JSON.")
	}
	return badRequest("The request body does not match the method's request message.")
}

// splitQueryKey splits "a.b.c" into field names; empty names are invalid.
func splitQueryKey(k string) ([]string, bool) {
	names := strings.Split(k, ".")
	for _, n := range names {
		if n == "" {
			return nil, false
		}
	}
	return names, true
}

// queryValues parses the raw query strictly (a malformed escape is an error).
func queryValues(raw string) (url.Values, error) {
	if raw == "" {
		return nil, nil
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badRequest("The query string is malformed.")
	}
	return v, nil
}
