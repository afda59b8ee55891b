// Package export_wasi_http_incoming_handler implements the exported
// `wasi:http/incoming-handler` interface of the geo-router.
//
// It only gathers the inputs of package rule (config, headers, path) through the imports
// and sends rule's answer.
package export_wasi_http_incoming_handler

import (
	"wit_component/rule"
	"wit_component/wasihttp"

	types "wit_component/wasi_http_types"

	"witplug.dev/guestgc"
)

// Handle redirects the request to its region, or describes the choice in JSON.
func Handle(request *types.IncomingRequest, out *types.ResponseOutparam) {
	guestgc.Collect()
	country, _ := wasihttp.Header(request, "x-geo-country")
	clientIP, _ := wasihttp.Header(request, "x-witplug-client-ip")
	r := rule.Route(rule.Request{
		Config:        wasihttp.Config,
		Country:       country,
		ClientIP:      clientIP,
		Accept:        wasihttp.Values(request, "accept"),
		PathWithQuery: wasihttp.PathWithQuery(request),
	})
	request.Drop()
	wasihttp.Send(out, wasihttp.Response(r))
}
