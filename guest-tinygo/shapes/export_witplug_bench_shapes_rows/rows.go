// Package export_witplug_bench_shapes_rows: the `rows` candidate shape, for the `shapes`
// benchmark group.
package export_witplug_bench_shapes_rows

import (
	"strings"

	"witplug.dev/guestgc"

	rows "wit_component/witplug_bench_shapes_rows"
)

// Copy keeps every record unchanged.
func Copy(batch rows.Batch) rows.Answer {
	guestgc.Collect()
	outcomes := make([]rows.Outcome, len(batch.Rows))
	for i := range outcomes {
		outcomes[i] = rows.MakeOutcomeKeep(nil)
	}
	return rows.Answer{Outcomes: outcomes}
}

// Touch trims and lowercases the `email` text of every record, as an edit.
func Touch(batch rows.Batch) rows.Answer {
	guestgc.Collect()
	email := index(batch.Names, "email")
	var text strings.Builder
	text.Grow(len(batch.Text) / 4)
	outcomes := make([]rows.Outcome, len(batch.Rows))
	for r, row := range batch.Rows {
		outcomes[r] = touch(row, email, batch.Text, &text)
	}
	return rows.Answer{Text: text.String(), Outcomes: outcomes}
}

func touch(row rows.Row, email int, in string, out *strings.Builder) rows.Outcome {
	for c, cell := range row.Cells {
		if int(cell.Name) != email || cell.Value.Tag() != rows.Value_Text {
			continue
		}
		span := cell.Value.Text()
		value, ok := slice(in, span.Start, span.Len)
		if !ok {
			return rows.MakeOutcomeError("span out of the text")
		}
		start := uint32(out.Len())
		out.WriteString(strings.ToLower(strings.TrimSpace(value)))
		edit := rows.Edit{Cell: uint32(c), Value: rows.MakeValueText(rows.Span{Start: start, Len: uint32(out.Len()) - start})}
		return rows.MakeOutcomeKeep([]rows.Edit{edit})
	}
	return rows.MakeOutcomeKeep(nil)
}

func index(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

func slice(text string, start, length uint32) (string, bool) {
	end := uint64(start) + uint64(length)
	if end > uint64(len(text)) {
		return "", false
	}
	return text[start:end], true
}
