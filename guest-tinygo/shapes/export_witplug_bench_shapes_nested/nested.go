// Package export_witplug_bench_shapes_nested: 0.1.0's record shape, for the `shapes`
// benchmark group (see guest-rust/shapes, its Rust twin).
package export_witplug_bench_shapes_nested

import (
	"strings"

	"witplug.dev/guestgc"

	nested "wit_component/witplug_bench_shapes_nested"
)

// Copy keeps every record.
func Copy(batch []nested.Item) []nested.Outcome {
	guestgc.Collect()
	outcomes := make([]nested.Outcome, len(batch))
	for i, item := range batch {
		outcomes[i] = nested.MakeOutcomeKeep(item)
	}
	return outcomes
}

// Touch trims and lowercases the `email` text of every record.
func Touch(batch []nested.Item) []nested.Outcome {
	guestgc.Collect()
	outcomes := make([]nested.Outcome, len(batch))
	for i, item := range batch {
		for j, field := range item.Fields {
			if field.Name == "email" {
				if field.Value.Tag() == nested.Value_Text {
					item.Fields[j].Value = nested.MakeValueText(strings.ToLower(strings.TrimSpace(field.Value.Text())))
				}
				break
			}
		}
		outcomes[i] = nested.MakeOutcomeKeep(item)
	}
	return outcomes
}
