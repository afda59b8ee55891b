// Package export_witplug_plugin_transformer implements the exported `transformer`
// interface of the `transform-plugin` world for `hostile`: a plugin that attacks its host
// on demand, for host tests only (the Go counterpart of guest-rust/hostile).
//
// The key of each record selects an attack; its parameters are fields of the record (the
// first field of that name). Records are handled in order.
//
//   - Never return: `spin` (a loop in the exported call), `goroutines-spin` (a loop in
//     another goroutine), `alloc-bomb` (the Go heap).
//   - `goroutines-leak` returns normally, leaving 100 goroutines behind in the instance.
//   - Reach for what was not granted: `env` (`name`), `read` (`path`). Success keeps the
//     record with the result appended; a refusal is an error outcome (`env`, `io`).
//   - `panic` panics; any other key keeps the record unchanged.
package export_witplug_plugin_transformer

import (
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	transformer "wit_component/witplug_plugin_transformer"
	types "wit_component/witplug_plugin_types"
)

// leakedGoroutines is how many goroutines `goroutines-leak` leaves behind.
const leakedGoroutines = 100

// mib is the size of one `alloc-bomb` allocation.
const mib = 1 << 20

var (
	// never is never sent to nor closed: receiving from it blocks forever.
	never = make(chan struct{})
	// spins counts loop iterations; a package-level variable, so every iteration stores.
	spins uint64
	// hoard keeps every `alloc-bomb` allocation reachable, so that the GC frees none.
	hoard [][]byte
)

// ProcessBatch runs the attack of every record, in order: one outcome per record.
func ProcessBatch(batch []types.Record) []transformer.Outcome {
	outcomes := make([]transformer.Outcome, len(batch))
	for i, record := range batch {
		outcomes[i] = attack(record)
	}
	return outcomes
}

// attack runs the attack that the record's key names.
func attack(record types.Record) transformer.Outcome {
	switch record.Key {
	case "spin":
		spin()
	case "goroutines-leak":
		leakGoroutines()
	case "goroutines-spin":
		spinInGoroutine()
	case "alloc-bomb":
		allocBomb()
	case "panic":
		panic("hostile Go plugin panicked")
	case "env":
		return envVar(record)
	case "read":
		return read(record)
	}
	return transformer.MakeOutcomeKeep(record)
}

// spin loops forever. Go never deletes an infinite loop, and the store to a package-level
// variable makes each iteration real work.
func spin() {
	for {
		spins++
	}
}

// leakGoroutines starts goroutines that never finish, half blocked on a channel and half
// sleeping in a loop, and returns once they all run. Go on wasm runs goroutines only
// while an export is executing, so they stay parked in the instance between calls.
func leakGoroutines() {
	var started sync.WaitGroup
	started.Add(leakedGoroutines)
	for i := range leakedGoroutines {
		if i%2 == 0 {
			go func() {
				started.Done()
				<-never
			}()
		} else {
			go func() {
				started.Done()
				for {
					time.Sleep(10 * time.Millisecond)
				}
			}()
		}
	}
	// Blocking here hands the thread to the new goroutines until each has started.
	started.Wait()
}

// spinInGoroutine makes another goroutine take the thread for good: wasm has no
// asynchronous preemption, so once scheduled a loop without calls never yields and this
// call never returns.
func spinInGoroutine() {
	go spin()
	runtime.Gosched()
	// Not reached (the spinner keeps the thread); should it ever be, still never return.
	<-never
}

// allocBomb keeps 1 MiB slices, each filled with a non-zero byte so that every page is
// written, until the runtime runs out of memory.
func allocBomb() {
	for {
		chunk := make([]byte, mib)
		for i := range chunk {
			chunk[i] = 0xA5
		}
		hoard = append(hoard, chunk)
	}
}

// envVar reads the environment variable `name` into the field `value`.
func envVar(record types.Record) transformer.Outcome {
	name, ok := textParam(record, "name")
	if !ok {
		return missingField("name")
	}
	value, ok := os.LookupEnv(name)
	if !ok {
		return recordError("env", name+" is not set")
	}
	return keepWith(record, "value", types.MakeValueText(value))
}

// read reads the file `path` into the field `content`, as text (invalid UTF-8 replaced:
// a WIT string must be valid UTF-8).
func read(record types.Record) transformer.Outcome {
	path, ok := textParam(record, "path")
	if !ok {
		return missingField("path")
	}
	bytes, err := os.ReadFile(path)
	if err != nil {
		return recordError("io", err.Error())
	}
	content := strings.ToValidUTF8(string(bytes), "\uFFFD")
	return keepWith(record, "content", types.MakeValueText(content))
}

// textParam is the value of the record's first field called name, if it is text.
func textParam(record types.Record, name string) (string, bool) {
	for _, field := range record.Fields {
		if field.Name == name {
			if field.Value.Tag() != types.Value_Text {
				return "", false
			}
			return field.Value.Text(), true
		}
	}
	return "", false
}

// keepWith keeps the record with one more field.
func keepWith(record types.Record, name string, value types.Value) transformer.Outcome {
	record.Fields = append(record.Fields, types.Field{Name: name, Value: value})
	return transformer.MakeOutcomeKeep(record)
}

func missingField(name string) transformer.Outcome {
	return recordError("missing-field", "`"+name+"` must be a text field")
}

func recordError(code, message string) transformer.Outcome {
	return transformer.MakeOutcomeError(transformer.RecordError{Code: code, Message: message})
}
