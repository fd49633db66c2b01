// Package jsonpath parses field paths ("user.id", "orders[].total") and shapes JSON documents
// with them: allow-lists, deny-lists, renames and role-restricted fields, as package bff applies
// per client variant. It also offers Lookup (one value by path) and Members (iterate an object)
// for package aggregate.
//
// Shaping works on the raw bytes: the document is validated once with encoding/json.Valid, then
// walked without decoding, so untouched values are copied byte for byte, member order is kept and
// a typical allow-list of a flat object costs no allocation beyond the output buffer.
//
// Everything here is immutable after construction and safe for concurrent use.
package jsonpath
