// Package export_witplug_plugin_transformer implements the exported `transformer`
// interface of the `transform-plugin` world.
//
// It only converts between the generated WIT types and the plain types of package rule,
// which holds the rule itself, and reads the configuration and logs through the imports.
package export_witplug_plugin_transformer

import (
	"strconv"

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
func ProcessBatch(batch []types.Record) []transformer.Outcome {
	guestgc.Collect()
	cfg := rule.ParseConfig(getConfig)
	outcomes := make([]transformer.Outcome, len(batch))
	var counts [rule.Error + 1]int
	for i, record := range batch {
		if i%collectEvery == collectEvery-1 {
			guestgc.Collect()
		}
		outcome := rule.Apply(cfg, fromWIT(record))
		counts[outcome.Kind]++
		outcomes[i] = toWIT(outcome)
	}
	logging.Log(logging.Level_Debug, "email-normalizer processed a batch", []witTypes.Tuple2[string, string]{
		{F0: "records", F1: strconv.Itoa(len(batch))},
		{F0: "kept", F1: strconv.Itoa(counts[rule.Keep])},
		{F0: "dropped", F1: strconv.Itoa(counts[rule.Drop])},
		{F0: "split", F1: strconv.Itoa(counts[rule.Split])},
		{F0: "errors", F1: strconv.Itoa(counts[rule.Error])},
	})
	return outcomes
}

// getConfig reads one configuration entry through the `config` import.
func getConfig(key string) (string, bool) {
	value := config.Get(key)
	if value.IsNone() {
		return "", false
	}
	return value.Some(), true
}

func fromWIT(r types.Record) rule.Record {
	fields := make([]rule.Field, len(r.Fields))
	for i, f := range r.Fields {
		fields[i] = rule.Field{Name: f.Name, Value: valueFromWIT(f.Value)}
	}
	return rule.Record{Key: r.Key, Fields: fields}
}

func valueFromWIT(v types.Value) rule.Value {
	switch v.Tag() {
	case types.Value_Boolean:
		return rule.Value{Kind: rule.Boolean, Bool: v.Boolean()}
	case types.Value_Integer:
		return rule.Value{Kind: rule.Integer, Int: v.Integer()}
	case types.Value_Float:
		return rule.Value{Kind: rule.Float, Float: v.Float()}
	case types.Value_Text:
		return rule.Value{Kind: rule.Text, Text: v.Text()}
	case types.Value_Bytes:
		return rule.Value{Kind: rule.Bytes, Bytes: v.Bytes()}
	case types.Value_TextList:
		return rule.Value{Kind: rule.TextList, List: v.TextList()}
	default:
		return rule.Value{Kind: rule.Null}
	}
}

func toWIT(o rule.Outcome) transformer.Outcome {
	switch o.Kind {
	case rule.Keep:
		return transformer.MakeOutcomeKeep(recordToWIT(o.Record))
	case rule.Drop:
		return transformer.MakeOutcomeDrop(o.Reason)
	case rule.Split:
		records := make([]types.Record, len(o.Records))
		for i, r := range o.Records {
			records[i] = recordToWIT(r)
		}
		return transformer.MakeOutcomeSplit(records)
	default:
		return transformer.MakeOutcomeError(transformer.RecordError{Code: o.Code, Message: o.Message})
	}
}

func recordToWIT(r rule.Record) types.Record {
	fields := make([]types.Field, len(r.Fields))
	for i, f := range r.Fields {
		fields[i] = types.Field{Name: f.Name, Value: valueToWIT(f.Value)}
	}
	return types.Record{Key: r.Key, Fields: fields}
}

func valueToWIT(v rule.Value) types.Value {
	switch v.Kind {
	case rule.Boolean:
		return types.MakeValueBoolean(v.Bool)
	case rule.Integer:
		return types.MakeValueInteger(v.Int)
	case rule.Float:
		return types.MakeValueFloat(v.Float)
	case rule.Text:
		return types.MakeValueText(v.Text)
	case rule.Bytes:
		return types.MakeValueBytes(v.Bytes)
	case rule.TextList:
		return types.MakeValueTextList(v.List)
	default:
		return types.MakeValueNull()
	}
}
