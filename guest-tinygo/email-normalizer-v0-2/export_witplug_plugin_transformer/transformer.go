// Package export_witplug_plugin_transformer implements the exported `transformer`
// interface of `witplug:plugin/transform-plugin@0.2.0`, the flat record shape.
//
// The rule is package rule of ../email-normalizer, copied into this module by the build,
// so that both versions answer alike by construction. This package reads the flat batch
// into the rule's plain records and writes each outcome back: a kept record that has the
// fields it came with is answered `keep` with edits of the values the rule changed, any
// other one `keep-as` a record of the answer.
package export_witplug_plugin_transformer

import (
	"math"
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
	cfg := rule.ParseConfig(getConfig)
	w := newWriter(&batch)
	var counts [rule.Error + 1]int
	for i := range batch.Records {
		if i%collectEvery == collectEvery-1 {
			guestgc.Collect()
		}
		outcome := rule.Apply(cfg, w.read(i))
		counts[outcome.Kind]++
		w.push(i, outcome)
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

// writer reads records out of one batch and writes the answer to it. The host checks
// every span of the answer; the batch it sends is well formed, so a span out of range is
// a host bug, read here as empty rather than a trap.
type writer struct {
	batch   *types.Batch
	answer  transformer.Answer
	text    strings.Builder
	ownName map[string]uint32
}

func newWriter(batch *types.Batch) *writer {
	w := &writer{batch: batch}
	w.answer.Outcomes = make([]transformer.Outcome, 0, len(batch.Records))
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

func cellsOf(batch *types.Batch, r types.Record) []types.Cell {
	end := uint64(r.First) + uint64(r.Count)
	if end > uint64(len(batch.Cells)) {
		return nil
	}
	return batch.Cells[r.First:end]
}

// read gives input record i as the rule takes it.
func (w *writer) read(i int) rule.Record {
	b := w.batch
	r := b.Records[i]
	cells := cellsOf(b, r)
	fields := make([]rule.Field, len(cells))
	for k, cell := range cells {
		name := ""
		if int(cell.Name) < len(b.Names) {
			name = b.Names[cell.Name]
		}
		fields[k] = rule.Field{Name: name, Value: w.value(cell.Value)}
	}
	return rule.Record{Key: textAt(b.Text, r.Key), Fields: fields}
}

func (w *writer) value(v types.Value) rule.Value {
	b := w.batch
	switch v.Tag() {
	case types.Value_Boolean:
		return rule.Value{Kind: rule.Boolean, Bool: v.Boolean()}
	case types.Value_Integer:
		return rule.Value{Kind: rule.Integer, Int: v.Integer()}
	case types.Value_Float:
		return rule.Value{Kind: rule.Float, Float: v.Float()}
	case types.Value_Text:
		return rule.Value{Kind: rule.Text, Text: textAt(b.Text, v.Text())}
	case types.Value_Bytes:
		s := v.Bytes()
		end := uint64(s.Start) + uint64(s.Len)
		if end > uint64(len(b.Bytes)) {
			return rule.Value{Kind: rule.Bytes}
		}
		return rule.Value{Kind: rule.Bytes, Bytes: b.Bytes[s.Start:end]}
	case types.Value_TextList:
		s := v.TextList()
		end := uint64(s.Start) + uint64(s.Len)
		if end > uint64(len(b.Items)) {
			return rule.Value{Kind: rule.TextList}
		}
		list := make([]string, 0, s.Len)
		for _, item := range b.Items[s.Start:end] {
			list = append(list, textAt(b.Text, item))
		}
		return rule.Value{Kind: rule.TextList, List: list}
	default:
		return rule.Value{Kind: rule.Null}
	}
}

// unchanged tells whether the rule left a value as the batch's input cell had it.
func (w *writer) unchanged(input types.Value, v rule.Value) bool {
	return sameValue(w.value(input), v)
}

func sameValue(a, b rule.Value) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case rule.Boolean:
		return a.Bool == b.Bool
	case rule.Integer:
		return a.Int == b.Int
	case rule.Float:
		return math.Float64bits(a.Float) == math.Float64bits(b.Float)
	case rule.Text:
		return a.Text == b.Text
	case rule.Bytes:
		return string(a.Bytes) == string(b.Bytes)
	case rule.TextList:
		if len(a.List) != len(b.List) {
			return false
		}
		for i := range a.List {
			if a.List[i] != b.List[i] {
				return false
			}
		}
		return true
	default:
		return true
	}
}

// push adds the outcome of input record i.
func (w *writer) push(i int, o rule.Outcome) {
	var outcome transformer.Outcome
	switch o.Kind {
	case rule.Keep:
		outcome = w.keep(i, o.Record)
	case rule.Drop:
		outcome = transformer.MakeOutcomeDrop(o.Reason)
	case rule.Split:
		start := uint32(len(w.answer.Records))
		for _, r := range o.Records {
			w.record(r)
		}
		outcome = transformer.MakeOutcomeSplit(types.Span{Start: start, Len: uint32(len(o.Records))})
	default:
		outcome = transformer.MakeOutcomeError(transformer.RecordError{Code: o.Code, Message: o.Message})
	}
	w.answer.Outcomes = append(w.answer.Outcomes, outcome)
}

// keep answers `keep` with edits when the record has the fields it came with, else
// `keep-as`.
func (w *writer) keep(i int, r rule.Record) transformer.Outcome {
	b := w.batch
	cells := cellsOf(b, b.Records[i])
	same := len(cells) == len(r.Fields)
	for k := 0; same && k < len(cells); k++ {
		same = int(cells[k].Name) < len(b.Names) && b.Names[cells[k].Name] == r.Fields[k].Name
	}
	if !same {
		return transformer.MakeOutcomeKeepAs(w.record(r))
	}
	for k, cell := range cells {
		if !w.unchanged(cell.Value, r.Fields[k].Value) {
			w.answer.Edits = append(w.answer.Edits, transformer.Edit{
				Record: uint32(i),
				Cell:   uint32(k),
				Value:  w.valueOut(r.Fields[k].Value),
			})
		}
	}
	return transformer.MakeOutcomeKeep()
}

// record appends r to the answer's records and returns its index.
func (w *writer) record(r rule.Record) uint32 {
	key := w.textOut(r.Key)
	first := uint32(len(w.answer.Cells))
	for _, f := range r.Fields {
		w.answer.Cells = append(w.answer.Cells, types.Cell{Name: w.name(f.Name), Value: w.valueOut(f.Value)})
	}
	w.answer.Records = append(w.answer.Records, types.Record{Key: key, First: first, Count: uint32(len(r.Fields))})
	return uint32(len(w.answer.Records) - 1)
}

// name is the batch's index of a name, or the answer's own (counted after the batch's).
func (w *writer) name(name string) uint32 {
	for i, n := range w.batch.Names {
		if n == name {
			return uint32(i)
		}
	}
	if own, ok := w.ownName[name]; ok {
		return own
	}
	if w.ownName == nil {
		w.ownName = map[string]uint32{}
	}
	index := uint32(len(w.batch.Names) + len(w.answer.Names))
	w.answer.Names = append(w.answer.Names, name)
	w.ownName[name] = index
	return index
}

func (w *writer) textOut(s string) types.Span {
	start := uint32(w.text.Len())
	w.text.WriteString(s)
	return types.Span{Start: start, Len: uint32(len(s))}
}

func (w *writer) valueOut(v rule.Value) types.Value {
	switch v.Kind {
	case rule.Boolean:
		return types.MakeValueBoolean(v.Bool)
	case rule.Integer:
		return types.MakeValueInteger(v.Int)
	case rule.Float:
		return types.MakeValueFloat(v.Float)
	case rule.Text:
		return types.MakeValueText(w.textOut(v.Text))
	case rule.Bytes:
		start := uint32(len(w.answer.Bytes))
		w.answer.Bytes = append(w.answer.Bytes, v.Bytes...)
		return types.MakeValueBytes(types.Span{Start: start, Len: uint32(len(v.Bytes))})
	case rule.TextList:
		start := uint32(len(w.answer.Items))
		for _, item := range v.List {
			w.answer.Items = append(w.answer.Items, w.textOut(item))
		}
		return types.MakeValueTextList(types.Span{Start: start, Len: uint32(len(v.List))})
	default:
		return types.MakeValueNull()
	}
}
