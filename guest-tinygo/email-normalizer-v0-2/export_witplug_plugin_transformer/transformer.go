// Package export_witplug_plugin_transformer implements the exported `transformer`
// interface of `witplug:plugin/transform-plugin@0.2.0`, the flat record shape.
//
// The rule is applied to the batch where it lies, as the Rust guest's lean.rs does: texts
// are strings sliced from the batch's text (trimmed by slicing, never copied), field names
// are compared as the indices the configured names have in the batch, found once per
// batch, and the answer holds only what the rule changed (`keep` with edits, `split` into
// records of the answer). Steps 4 to 7 and every message are package rule's
// (../email-normalizer, copied into this module by the build), which the 0.1.0 guest
// runs too; the host's differential tests hold every build to identical outcomes.
package export_witplug_plugin_transformer

import (
	"strconv"
	"strings"

	"wit_component/rule"
	config "wit_component/witplug_plugin_config"
	logging "wit_component/witplug_plugin_logging"
	transformer "wit_component/witplug_plugin_transformer"
	types "wit_component/witplug_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"witplug.dev/guestgc"
)

// collectEvery is how many records go by between two chances to collect garbage: the
// collector only runs where guestgc.Collect is called (see package guestgc).
const collectEvery = 256

// ProcessBatch applies the rule to every record: one outcome per record, in input order.
//
// The configuration is read on every call rather than cached, so that an instance
// snapshotted after a first call (pre-initialisation) still follows its own configuration.
func ProcessBatch(batch types.Batch) transformer.Answer {
	guestgc.Collect()
	w := newWriter(&batch, rule.ParseConfig(getConfig))
	var counts [rule.Error + 1]int
	for i := range batch.Records {
		if i%collectEvery == collectEvery-1 {
			guestgc.Collect()
		}
		counts[w.apply(i)]++
	}
	logging.Log(logging.Level_Debug, "email-normalizer processed a batch", []witTypes.Tuple2[string, string]{
		{F0: "records", F1: strconv.Itoa(len(batch.Records))},
		{F0: "kept", F1: strconv.Itoa(counts[rule.Keep])},
		{F0: "dropped", F1: strconv.Itoa(counts[rule.Drop])},
		{F0: "split", F1: strconv.Itoa(counts[rule.Split])},
		{F0: "errors", F1: strconv.Itoa(counts[rule.Error])},
	})
	return w.finish()
}

// getConfig reads one configuration entry through the `config` import.
func getConfig(key string) (string, bool) {
	value := config.Get(key)
	if value.IsNone() {
		return "", false
	}
	return value.Some(), true
}

// writer applies the rule to the records of one batch and writes the answer. The host
// checks every span of the answer; the batch it sends is well formed, so a span out of
// range is a host bug, read here as empty rather than a trap.
type writer struct {
	batch *types.Batch
	cfg   rule.Config
	// email and required are the batch's name indices of the configured fields, -1 for a
	// name that no record of the batch has.
	email    int
	required []int
	answer   transformer.Answer
	text     strings.Builder
	// addresses and items are reused from record to record.
	addresses []string
	items     []string
}

func newWriter(batch *types.Batch, cfg rule.Config) *writer {
	index := func(name string) int {
		for i, n := range batch.Names {
			if n == name {
				return i
			}
		}
		return -1
	}
	w := &writer{batch: batch, cfg: cfg, email: index(cfg.EmailField)}
	for _, name := range cfg.RequiredFields {
		w.required = append(w.required, index(name))
	}
	w.answer.Outcomes = make([]transformer.Outcome, 0, len(batch.Records))
	w.text.Grow(len(batch.Text) / 4)
	return w
}

func (w *writer) finish() transformer.Answer {
	w.answer.Text = w.text.String()
	return w.answer
}

func textAt(text string, s types.Span) string {
	end := uint64(s.Start) + uint64(s.Len)
	if end > uint64(len(text)) {
		return ""
	}
	return text[s.Start:end]
}

func sliceAt[T any](all []T, s types.Span) []T {
	end := uint64(s.Start) + uint64(s.Len)
	if end > uint64(len(all)) {
		return nil
	}
	return all[s.Start:end]
}

func cellsOf(batch *types.Batch, r types.Record) []types.Cell {
	return sliceAt(batch.Cells, types.Span{Start: r.First, Len: r.Count})
}

// find is the position of the first cell named by name index n, or -1.
func find(cells []types.Cell, n int) int {
	if n < 0 {
		return -1
	}
	for k, cell := range cells {
		if int(cell.Name) == n {
			return k
		}
	}
	return -1
}

// apply runs the rule (samples/README.md, steps numbered alike) on input record i and
// writes its outcome.
func (w *writer) apply(i int) rule.OutcomeKind {
	b := w.batch
	r := b.Records[i]
	cells := cellsOf(b, r)

	// 1. is done by slicing where a value is read: trimmed texts are substrings.
	// 2. Required fields, in configured order.
	for j, name := range w.cfg.RequiredFields {
		k := find(cells, w.required[j])
		if k < 0 || w.isEmpty(cells[k].Value) {
			w.push(transformer.MakeOutcomeDrop("missing required field `" + name + "`"))
			return rule.Drop
		}
	}

	// 3. No email field: keep the trimmed record.
	e := find(cells, w.email)
	if e < 0 || cells[e].Value.Tag() == types.Value_Null {
		w.keep(i, cells, -1, "")
		return rule.Keep
	}

	// 4. to 7. The valid addresses of allowed domains, or the end of the record.
	kept, held, end := rule.Addresses(w.cfg, w.view(cells[e].Value), w.addresses)
	if end != nil {
		if end.Kind == rule.Drop {
			w.push(transformer.MakeOutcomeDrop(end.Reason))
		} else {
			w.push(transformer.MakeOutcomeError(transformer.RecordError{Code: end.Code, Message: end.Message}))
		}
		return end.Kind
	}
	w.addresses = kept

	// 8. One address in, the same one out: keep. Otherwise one record per address.
	if held == 1 {
		w.keep(i, cells, e, kept[0])
		return rule.Keep
	}
	start := uint32(len(w.answer.Records))
	for _, address := range kept {
		w.copy(r.Key, cells, e, address)
	}
	w.push(transformer.MakeOutcomeSplit(types.Span{Start: start, Len: uint32(len(kept))}))
	return rule.Split
}

func (w *writer) push(outcome transformer.Outcome) {
	w.answer.Outcomes = append(w.answer.Outcomes, outcome)
}

// isEmpty tells whether a required field's value counts as missing (after step 1).
func (w *writer) isEmpty(v types.Value) bool {
	switch v.Tag() {
	case types.Value_Null:
		return true
	case types.Value_Text:
		return rule.Trim(textAt(w.batch.Text, v.Text())) == ""
	case types.Value_TextList:
		return len(sliceAt(w.batch.Items, v.TextList())) == 0
	default:
		return false
	}
}

// view is the email field's value as rule.Addresses takes it: trimmed, and only what
// it reads (a text, the items of a list, or else the kind).
func (w *writer) view(v types.Value) rule.Value {
	switch v.Tag() {
	case types.Value_Text:
		return rule.TextValue(rule.Trim(textAt(w.batch.Text, v.Text())))
	case types.Value_TextList:
		w.items = w.items[:0]
		for _, item := range sliceAt(w.batch.Items, v.TextList()) {
			w.items = append(w.items, rule.Trim(textAt(w.batch.Text, item)))
		}
		return rule.Value{Kind: rule.TextList, List: w.items}
	case types.Value_Boolean:
		return rule.Value{Kind: rule.Boolean}
	case types.Value_Integer:
		return rule.Value{Kind: rule.Integer}
	case types.Value_Float:
		return rule.Value{Kind: rule.Float}
	case types.Value_Bytes:
		return rule.Value{Kind: rule.Bytes}
	default:
		return rule.Value{Kind: rule.Null}
	}
}

// keep answers `keep`, with an edit of every cell that trimming changed, and of cell e
// (when e >= 0) to the text address when it held anything else.
func (w *writer) keep(i int, cells []types.Cell, e int, address string) {
	b := w.batch
	for k, cell := range cells {
		var value types.Value
		switch {
		case k == e:
			if cell.Value.Tag() == types.Value_Text && textAt(b.Text, cell.Value.Text()) == address {
				continue
			}
			value = types.MakeValueText(w.textOut(address))
		case cell.Value.Tag() == types.Value_Text:
			raw := textAt(b.Text, cell.Value.Text())
			trimmed := rule.Trim(raw)
			if len(trimmed) == len(raw) {
				continue
			}
			value = types.MakeValueText(w.textOut(trimmed))
		case cell.Value.Tag() == types.Value_TextList:
			if !w.trims(cell.Value.TextList()) {
				continue
			}
			value = w.listOut(cell.Value.TextList())
		default:
			continue
		}
		w.answer.Edits = append(w.answer.Edits, transformer.Edit{Record: uint32(i), Cell: uint32(k), Value: value})
	}
	w.push(transformer.MakeOutcomeKeep())
}

// trims tells whether trimming changes an item of the text list at s.
func (w *writer) trims(s types.Span) bool {
	for _, item := range sliceAt(w.batch.Items, s) {
		raw := textAt(w.batch.Text, item)
		if len(rule.Trim(raw)) != len(raw) {
			return true
		}
	}
	return false
}

// copy appends a copy of the record with cells trimmed and cell e set to the text
// address to the answer's records.
func (w *writer) copy(key types.Span, cells []types.Cell, e int, address string) {
	b := w.batch
	first := uint32(len(w.answer.Cells))
	keyOut := w.textOut(textAt(b.Text, key))
	for k, cell := range cells {
		value := cell.Value
		switch {
		case k == e:
			value = types.MakeValueText(w.textOut(address))
		case value.Tag() == types.Value_Text:
			value = types.MakeValueText(w.textOut(rule.Trim(textAt(b.Text, value.Text()))))
		case value.Tag() == types.Value_TextList:
			value = w.listOut(value.TextList())
		case value.Tag() == types.Value_Bytes:
			bytes := sliceAt(b.Bytes, value.Bytes())
			start := uint32(len(w.answer.Bytes))
			w.answer.Bytes = append(w.answer.Bytes, bytes...)
			value = types.MakeValueBytes(types.Span{Start: start, Len: uint32(len(bytes))})
		}
		// The batch's names, by index: the answer's names continue them.
		w.answer.Cells = append(w.answer.Cells, types.Cell{Name: cell.Name, Value: value})
	}
	w.answer.Records = append(w.answer.Records, types.Record{Key: keyOut, First: first, Count: uint32(len(cells))})
}

// listOut writes the trimmed items of the batch's text list at s into the answer.
func (w *writer) listOut(s types.Span) types.Value {
	start := uint32(len(w.answer.Items))
	items := sliceAt(w.batch.Items, s)
	for _, item := range items {
		w.answer.Items = append(w.answer.Items, w.textOut(rule.Trim(textAt(w.batch.Text, item))))
	}
	return types.MakeValueTextList(types.Span{Start: start, Len: uint32(len(items))})
}

func (w *writer) textOut(s string) types.Span {
	start := uint32(w.text.Len())
	w.text.WriteString(s)
	return types.Span{Start: start, Len: uint32(len(s))}
}
