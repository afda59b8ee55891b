// Keeps Go's garbage collector out of cabi_realloc (see guestgc.go). Every Go reactor
// guest requires it and replaces it by this directory, so that nothing is fetched; the
// xtask carries that `replace` into the go.mod of the component build.
module witplug.dev/guestgc

go 1.27.1
