package jsonpath

import (
	"mime"
	"strings"
)

// IsJSONMediaType reports whether a Content-Type header value names JSON: application/json or an
// application/*+json type (parameters such as charset are ignored).
func IsJSONMediaType(contentType string) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}
