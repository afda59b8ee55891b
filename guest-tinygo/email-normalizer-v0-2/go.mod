module wit_component

go 1.27.1

require witplug.dev/guestgc v0.0.0

// Keeps the collector out of cabi_realloc; never fetched (see ../guestgc/go.mod).
replace witplug.dev/guestgc => ../guestgc
