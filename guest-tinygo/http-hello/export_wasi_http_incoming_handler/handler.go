// Package export_wasi_http_incoming_handler implements the exported
// `wasi:http/incoming-handler` interface: every request gets the same greeting.
//
// wit-bindgen-go names the package after the interface; `wit_exports.go`, the generated
// package main, calls Handle.
package export_wasi_http_incoming_handler

import (
	"wit_component/wasihttp"

	types "wit_component/wasi_http_types"

	"witplug.dev/guestgc"
)

// Handle answers any request with 200 and `hello from witplug`.
func Handle(request *types.IncomingRequest, out *types.ResponseOutparam) {
	guestgc.Collect()
	request.Drop()
	wasihttp.Send(out, wasihttp.Response{
		Status:  200,
		Headers: [][2]string{{"content-type", "text/plain; charset=utf-8"}},
		Body:    []byte("hello from witplug\n"),
	})
}
