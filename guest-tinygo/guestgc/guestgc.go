// Package guestgc keeps Go's garbage collector out of cabi_realloc.
//
// The host hands a call's arguments (and an import's results) to a component through its
// cabi_realloc, where the component model forbids calling imports. Go's allocator may
// start a collection there, and the collector reads the wall clock and polls timers
// through WASI imports: the call traps with "cannot leave component instance". The
// preview1 adapter's monotonic-clock pause (wasmtime PR 13563) does not cover those
// reads (wasmtime issue 14318, componentize-go issue 77), so until the adapter or Go's
// runtime changes, a Go guest must not collect on its own.
//
// Importing this package turns automatic collection off. Call Collect where imports are
// allowed: at the start of every export, and every so often in a long loop. It collects
// when the heap has doubled since the last collection (what GOGC=100 does) and costs
// little otherwise.
package guestgc

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

func init() {
	debug.SetGCPercent(-1)
}

// minGoal is the smallest heap that is worth a collection, as Go's own minimum goal.
const minGoal = 4 << 20

var samples = []metrics.Sample{
	{Name: "/gc/heap/live:bytes"},
	{Name: "/memory/classes/heap/objects:bytes"},
}

// Collect runs a collection if the heap has grown enough since the last one.
func Collect() {
	metrics.Read(samples)
	if samples[0].Value.Kind() != metrics.KindUint64 || samples[1].Value.Kind() != metrics.KindUint64 {
		// A runtime without these metrics: collect every time rather than never.
		runtime.GC()
		return
	}
	goal := 2 * samples[0].Value.Uint64()
	if goal < minGoal {
		goal = minGoal
	}
	if samples[1].Value.Uint64() >= goal {
		runtime.GC()
	}
}
