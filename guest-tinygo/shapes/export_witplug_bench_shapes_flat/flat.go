// Package export_witplug_bench_shapes_flat: the `flat` candidate shape, for the `shapes`
// benchmark group.
package export_witplug_bench_shapes_flat

import (
	"strings"

	"witplug.dev/guestgc"

	flat "wit_component/witplug_bench_shapes_flat"
)

// Copy keeps every record unchanged.
func Copy(batch flat.Batch) flat.Answer {
	guestgc.Collect()
	outcomes := make([]flat.Outcome, len(batch.Rows))
	for i := range outcomes {
		outcomes[i] = flat.MakeOutcomeKeep()
	}
	return flat.Answer{Outcomes: outcomes}
}

// Touch trims and lowercases the `email` text of every record, as an edit.
func Touch(batch flat.Batch) flat.Answer {
	guestgc.Collect()
	email := -1
	for i, n := range batch.Names {
		if n == "email" {
			email = i
			break
		}
	}
	var text strings.Builder
	text.Grow(len(batch.Text) / 4)
	outcomes := make([]flat.Outcome, len(batch.Rows))
	edits := make([]flat.Edit, 0, len(batch.Rows))
	for r, row := range batch.Rows {
		outcomes[r] = flat.MakeOutcomeKeep()
		end := uint64(row.First) + uint64(row.Count)
		if end > uint64(len(batch.Cells)) {
			outcomes[r] = flat.MakeOutcomeError("cells out of the batch")
			continue
		}
		for c, cell := range batch.Cells[row.First:end] {
			if int(cell.Name) != email || cell.Value.Tag() != flat.Value_Text {
				continue
			}
			span := cell.Value.Text()
			if uint64(span.Start)+uint64(span.Len) > uint64(len(batch.Text)) {
				outcomes[r] = flat.MakeOutcomeError("span out of the text")
				break
			}
			start := uint32(text.Len())
			text.WriteString(strings.ToLower(strings.TrimSpace(batch.Text[span.Start : span.Start+span.Len])))
			value := flat.MakeValueText(flat.Span{Start: start, Len: uint32(text.Len()) - start})
			edits = append(edits, flat.Edit{Row: uint32(r), Cell: uint32(c), Value: value})
			break
		}
	}
	return flat.Answer{Text: text.String(), Outcomes: outcomes, Edits: edits}
}
