module wit_component

go 1.27.1

require witplug.dev/http-common v0.0.0

// Shared with the other handlers; never fetched (see ../http-common/go.mod).
replace witplug.dev/http-common => ../http-common
