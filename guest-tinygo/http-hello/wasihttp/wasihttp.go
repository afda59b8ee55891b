// Package wasihttp is what the Go HTTP handlers share on the bindings side: reading a
// request's headers and the configuration, and sending a response made of plain values.
//
// It lives in http-hello/ and the xtask copies it into the Go module of every handler
// that lists it (`shared` in xtask/src/go_guests.rs), so it is written once.
package wasihttp

import (
	config "wit_component/wasi_config_store"
	types "wit_component/wasi_http_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// Response is a response as plain values: status, headers in order, body.
type Response struct {
	Status  uint16
	Headers [][2]string
	Body    []byte
}

// Header is the first value of the request header `name` (lower case), if any.
func Header(req *types.IncomingRequest, name string) ([]byte, bool) {
	headers := req.Headers()
	defer headers.Drop()
	values := headers.Get(name)
	if len(values) == 0 {
		return nil, false
	}
	return values[0], true
}

// Values is every value of the request header `name` (lower case), in order.
func Values(req *types.IncomingRequest, name string) [][]byte {
	headers := req.Headers()
	defer headers.Drop()
	return headers.Get(name)
}

// PathWithQuery is the request's path and query as received, empty when it has none.
func PathWithQuery(req *types.IncomingRequest) string {
	return req.PathWithQuery().SomeOr("")
}

// Config reads one configuration entry through wasi:config/store. A store error counts
// as an absent entry.
func Config(key string) (string, bool) {
	value := config.Get(key)
	if value.IsErr() || value.Ok().IsNone() {
		return "", false
	}
	return value.Ok().Some(), true
}

// maxWrite is how much `blocking-write-and-flush` takes at once.
const maxWrite = 4096

// Send answers the request with `r`. A header value the host refuses (a configured
// region with a control character, say) leaves the request unanswered, which the host
// turns into a 500, as the Rust handlers do. Once the response is set, a failure to write
// the body only cuts it short.
func Send(out *types.ResponseOutparam, r Response) {
	entries := make([]witTypes.Tuple2[string, []uint8], len(r.Headers))
	for i, h := range r.Headers {
		entries[i] = witTypes.Tuple2[string, []uint8]{F0: h[0], F1: []byte(h[1])}
	}
	fields := types.FieldsFromList(entries)
	if fields.IsErr() {
		out.Drop()
		return
	}
	response := types.MakeOutgoingResponse(fields.Ok())
	response.SetStatusCode(r.Status)
	body := response.Body().Ok()
	types.ResponseOutparamSet(out, witTypes.Ok[*types.OutgoingResponse, types.ErrorCode](response))

	stream := body.Write().Ok()
	for rest := r.Body; len(rest) > 0; {
		chunk := rest[:min(len(rest), maxWrite)]
		if stream.BlockingWriteAndFlush(chunk).IsErr() {
			break
		}
		rest = rest[len(chunk):]
	}
	stream.Drop()
	types.OutgoingBodyFinish(body, witTypes.None[*types.Fields]())
}
