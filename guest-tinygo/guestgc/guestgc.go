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

// heapBytes reads the bytes of heap objects, live or not yet collected.
var heapBytes = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

var (
	// calls counts the calls of Collect in this instance. The first has no earlier call's
	// garbage to free: skipping it spares a fresh instance's one request the runtime's
	// first metrics read (about 80 us, its tables being built).
	calls int
	// goal is the heap size at which Collect collects: twice the heap after the last
	// collection (what GOGC=100 does), at least minGoal; 0 until the first reading.
	goal uint64
)

// Collect runs a collection if the heap has grown to its goal since the last one.
func Collect() {
	calls++
	if calls == 1 {
		return
	}
	metrics.Read(heapBytes)
	if heapBytes[0].Value.Kind() != metrics.KindUint64 {
		// A runtime without this metric: collect every time rather than never.
		runtime.GC()
		return
	}
	heap := heapBytes[0].Value.Uint64()
	if goal == 0 {
		goal = max(2*heap, minGoal)
	}
	if heap < goal {
		return
	}
	runtime.GC()
	metrics.Read(heapBytes)
	goal = max(2*heapBytes[0].Value.Uint64(), minGoal)
}
