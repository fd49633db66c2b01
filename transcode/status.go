package transcode

import (
	"encoding/json"
	"net/http"
	"strconv"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gatewaykit/gatewaykit"
)

// StatusClientClosedRequest is the HTTP status for codes.Canceled (nginx's 499): the client went away.
const StatusClientClosedRequest = 499

type codeInfo struct {
	name   string // canonical google.rpc.Code name
	status int    // HTTP status
	text   string // safe default detail
}

var codeTable = [...]codeInfo{
	codes.OK:                 {"OK", http.StatusOK, ""},
	codes.Canceled:           {"CANCELLED", StatusClientClosedRequest, "The request was canceled."},
	codes.Unknown:            {"UNKNOWN", http.StatusInternalServerError, "The service failed."},
	codes.InvalidArgument:    {"INVALID_ARGUMENT", http.StatusBadRequest, "The request is invalid."},
	codes.DeadlineExceeded:   {"DEADLINE_EXCEEDED", http.StatusGatewayTimeout, "The service did not answer in time."},
	codes.NotFound:           {"NOT_FOUND", http.StatusNotFound, "The resource was not found."},
	codes.AlreadyExists:      {"ALREADY_EXISTS", http.StatusConflict, "The resource already exists."},
	codes.PermissionDenied:   {"PERMISSION_DENIED", http.StatusForbidden, "Permission denied."},
	codes.ResourceExhausted:  {"RESOURCE_EXHAUSTED", http.StatusTooManyRequests, "A quota or resource is exhausted."},
	codes.FailedPrecondition: {"FAILED_PRECONDITION", http.StatusBadRequest, "The request cannot be served in the resource's current state."},
	codes.Aborted:            {"ABORTED", http.StatusConflict, "The operation was aborted by a conflict."},
	codes.OutOfRange:         {"OUT_OF_RANGE", http.StatusBadRequest, "A value is out of range."},
	codes.Unimplemented:      {"UNIMPLEMENTED", http.StatusNotImplemented, "The operation is not implemented."},
	codes.Internal:           {"INTERNAL", http.StatusInternalServerError, "The service failed."},
	codes.Unavailable:        {"UNAVAILABLE", http.StatusServiceUnavailable, "The service is unavailable."},
	codes.DataLoss:           {"DATA_LOSS", http.StatusInternalServerError, "The service failed."},
	codes.Unauthenticated:    {"UNAUTHENTICATED", http.StatusUnauthorized, "Authentication is required."},
}

func info(c codes.Code) codeInfo {
	if int(c) < len(codeTable) {
		return codeTable[c]
	}
	return codeInfo{"UNKNOWN", http.StatusInternalServerError, "The service failed."}
}

// HTTPStatus returns the HTTP status a gRPC code is answered with, the google.rpc.Code mapping
// grpc-gateway and Envoy use:
//
//	OK 200, CANCELLED 499, UNKNOWN 500, INVALID_ARGUMENT 400, DEADLINE_EXCEEDED 504, NOT_FOUND 404,
//	ALREADY_EXISTS 409, PERMISSION_DENIED 403, RESOURCE_EXHAUSTED 429, FAILED_PRECONDITION 400,
//	ABORTED 409, OUT_OF_RANGE 400, UNIMPLEMENTED 501, INTERNAL 500, UNAVAILABLE 503, DATA_LOSS 500,
//	UNAUTHENTICATED 401; any other code 500.
func HTTPStatus(c codes.Code) int { return info(c).status }

// CodeName returns the canonical google.rpc.Code name of c ("NOT_FOUND"), "UNKNOWN" for codes
// outside 0..16.
func CodeName(c codes.Code) string { return info(c).name }

// maxExposedMessage bounds a status message copied to a client.
const maxExposedMessage = 1024

// message returns the client-safe text for a status.
func (c *config) message(st *status.Status) string {
	if c.exposeMessage {
		if m := st.Message(); m != "" && len(m) <= maxExposedMessage && utf8.ValidString(m) {
			return m
		}
	}
	return info(st.Code()).text
}

// writeStatus answers a failed call: a problem (default) or grpc-gateway's JSON error. hdr holds
// the response header metadata received before the failure, mapped through the allow-list.
func (t *Transcoder) writeStatus(w http.ResponseWriter, r *http.Request, st *status.Status, hdr metadata.MD) {
	t.mapMetadata(w.Header(), hdr, t.cfg.respHeaders)
	h := w.Header()
	h.Del("Trailer")
	h.Del("Transfer-Encoding")
	ci := info(st.Code())
	if t.cfg.gatewayErrors {
		b, _ := json.Marshal(gatewayError{Code: int32(st.Code()), Message: t.cfg.message(st), Details: []struct{}{}})
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(b)))
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(ci.status)
		_, _ = w.Write(b)
		return
	}
	p := &gatewaykit.Problem{
		Status:     ci.status,
		Detail:     t.cfg.message(st),
		Extensions: map[string]any{"grpc_status": ci.name},
		Err:        st.Err(),
	}
	if ci.status == StatusClientClosedRequest {
		p.Title = "Client Closed Request"
	}
	if st.Code() == codes.Unauthenticated {
		p.WithHeader("WWW-Authenticate", "Bearer")
	}
	t.cfg.errorHandler(w, r, p)
}

// reject answers a request the gateway refuses before calling the backend (always a problem).
func (t *Transcoder) reject(w http.ResponseWriter, r *http.Request, httpStatus int, detail string) {
	t.cfg.errorHandler(w, r, gatewaykit.NewProblem(httpStatus, detail))
}

// gatewayError is grpc-gateway's error body (a google.rpc.Status in JSON), without details.
type gatewayError struct {
	Code    int32      `json:"code"`
	Message string     `json:"message"`
	Details []struct{} `json:"details"`
}

// StreamError is the in-band error of a server-streaming response: the last line of the
// newline-delimited JSON stream is {"error": StreamError}. Code is the gRPC code number, Status its
// canonical name, HTTPStatus the status the error would have had before the first message, Message
// the client-safe text (see ExposeStatusMessages).
type StreamError struct {
	Code       int32  `json:"code"`
	Status     string `json:"status"`
	HTTPStatus int    `json:"http_status"`
	Message    string `json:"message"`
}

type streamErrorLine struct {
	Error StreamError `json:"error"`
}

// streamError renders the in-band error line, without the newline.
func (c *config) streamError(st *status.Status) []byte {
	ci := info(st.Code())
	b, _ := json.Marshal(streamErrorLine{StreamError{Code: int32(st.Code()), Status: ci.name, HTTPStatus: ci.status, Message: c.message(st)}})
	return b
}
