// Package export_witplug_bench_shapes_tagged: the `tagged` candidate shape (cells are
// plain records, no variants), for the `shapes` benchmark group.
package export_witplug_bench_shapes_tagged

import (
	"strings"

	"witplug.dev/guestgc"

	tagged "wit_component/witplug_bench_shapes_tagged"
)

// Copy keeps every record unchanged.
func Copy(batch tagged.Batch) tagged.Answer {
	guestgc.Collect()
	// The zero outcome is a keep (verdict 0) with no reason.
	return tagged.Answer{Outcomes: make([]tagged.Outcome, len(batch.Rows))}
}

// Touch trims and lowercases the `email` text of every record, as an edit.
func Touch(batch tagged.Batch) tagged.Answer {
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
	outcomes := make([]tagged.Outcome, len(batch.Rows))
	edits := make([]tagged.Edit, 0, len(batch.Rows))
	for r, row := range batch.Rows {
		end := uint64(row.First) + uint64(row.Count)
		if end > uint64(len(batch.Cells)) {
			outcomes[r] = tagged.Outcome{Verdict: tagged.Verdict_Error, Reason: "cells out of the batch"}
			continue
		}
		for c, cell := range batch.Cells[row.First:end] {
			if int(cell.Name) != email || cell.Kind != tagged.Kind_Text {
				continue
			}
			span := cell.Span
			if uint64(span.Start)+uint64(span.Len) > uint64(len(batch.Text)) {
				outcomes[r] = tagged.Outcome{Verdict: tagged.Verdict_Error, Reason: "span out of the text"}
				break
			}
			start := uint32(text.Len())
			text.WriteString(strings.ToLower(strings.TrimSpace(batch.Text[span.Start : span.Start+span.Len])))
			cell.Span = tagged.Span{Start: start, Len: uint32(text.Len()) - start}
			edits = append(edits, tagged.Edit{Row: uint32(r), Cell: uint32(c), Value: cell})
			break
		}
	}
	return tagged.Answer{Text: text.String(), Outcomes: outcomes, Edits: edits}
}
