// What the Go HTTP handlers' rule packages share, free of bindings so that it tests
// natively: jsonw (the JSON they write by hand) and ruletest (their table tests'
// comparison). A handler's go.mod requires it and replaces it by this directory, so that
// nothing is fetched; the xtask carries that `replace` over, as an absolute path, into the
// go.mod it generates for the component build (xtask/src/go_guests.rs).
module witplug.dev/http-common

go 1.27.1
