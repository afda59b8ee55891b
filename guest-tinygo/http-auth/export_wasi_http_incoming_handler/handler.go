// Package export_wasi_http_incoming_handler implements the exported
// `wasi:http/incoming-handler` interface of the bearer-token check.
//
// It only gathers the inputs of package rule (config, header, wall clock) through the
// imports and sends rule's answer.
package export_wasi_http_incoming_handler

import (
	"wit_component/rule"
	"wit_component/wasihttp"

	clock "wit_component/wasi_clocks_wall_clock"
	types "wit_component/wasi_http_types"

	"witplug.dev/guestgc"
)

// Handle checks the request's bearer token.
func Handle(request *types.IncomingRequest, out *types.ResponseOutparam) {
	guestgc.Collect()
	key, hasKey := wasihttp.Config("auth-key")
	authorization, hasAuthorization := wasihttp.Header(request, "authorization")
	request.Drop()
	r := rule.Check(rule.Request{
		Key:              key,
		HasKey:           hasKey,
		Authorization:    authorization,
		HasAuthorization: hasAuthorization,
		Now:              int64(clock.Now().Seconds),
	})
	wasihttp.Send(out, wasihttp.Response(r))
}
