// Package rule is the `email-normalizer` business rule, written against plain Go types.
//
// It imports no generated bindings, so `go test ./rule` runs natively; the export
// packages convert between these types and the WIT ones. The rule is specified in
// samples/README.md ("The `email-normalizer` rule") and implemented identically by the
// Rust guest: messages, codes and ordering must match byte for byte.
package rule

import (
	"slices"
	"strings"
)

// Kind tells which case of the WIT `value` variant a Value holds.
type Kind int

// The cases of the WIT `value` variant, in WIT order.
const (
	Null Kind = iota
	Boolean
	Integer
	Float
	Text
	Bytes
	TextList
)

// String returns the WIT name of the case, as used in error messages.
func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case Boolean:
		return "boolean"
	case Integer:
		return "integer"
	case Float:
		return "float"
	case Text:
		return "text"
	case Bytes:
		return "bytes"
	case TextList:
		return "text-list"
	default:
		return "unknown"
	}
}

// Value is one field value; only the member matching Kind is meaningful.
type Value struct {
	Kind  Kind
	Bool  bool
	Int   int64
	Float float64
	Text  string
	Bytes []byte
	List  []string
}

// TextValue returns a `text` value.
func TextValue(s string) Value { return Value{Kind: Text, Text: s} }

// Field is one named field of a record.
type Field struct {
	Name  string
	Value Value
}

// Record is a keyed record with ordered fields.
type Record struct {
	Key    string
	Fields []Field
}

// OutcomeKind tells which case of the WIT `outcome` variant an Outcome holds.
type OutcomeKind int

// The cases of the WIT `outcome` variant.
const (
	Keep OutcomeKind = iota
	Drop
	Split
	Error
)

// Outcome is what became of one record; only the members matching Kind are meaningful.
type Outcome struct {
	Kind    OutcomeKind
	Record  Record   // Keep
	Reason  string   // Drop
	Records []Record // Split
	Code    string   // Error
	Message string   // Error
}

// Config is the rule's configuration, see ParseConfig.
type Config struct {
	EmailField     string
	RequiredFields []string
	BlockedDomains []string
}

// Configuration keys (`--config KEY=VALUE`) and the default email field.
const (
	KeyEmailField     = "email-field"
	KeyRequiredFields = "required-fields"
	KeyBlockedDomains = "blocked-domains"
	DefaultEmailField = "email"
)

const (
	// whitespaceCutset is what trimming removes: ASCII space, tab, newline, carriage return.
	whitespaceCutset = " \t\n\r"
	// addressSeparators split a text email field into addresses.
	addressSeparators = ",;"
	// localPartPunctuation is allowed in a local part besides `a-z 0-9`.
	localPartPunctuation = ".!#$%&'*+/=?^_`{|}~-"
)

// ParseConfig reads the configuration through get, which reports whether a key is set.
//
// The email field's name is taken as it is. List entries are split on `,`, trimmed like
// field values, and empty entries are ignored: an unset `required-fields` means the email
// field, a set but empty one means none. Blocked domains are ASCII-lowercased, since
// addresses are compared lowercased.
func ParseConfig(get func(key string) (string, bool)) Config {
	cfg := Config{EmailField: DefaultEmailField}
	if v, ok := get(KeyEmailField); ok {
		cfg.EmailField = v
	}
	if v, ok := get(KeyRequiredFields); ok {
		cfg.RequiredFields = splitList(v)
	} else {
		cfg.RequiredFields = []string{cfg.EmailField}
	}
	if v, ok := get(KeyBlockedDomains); ok {
		for _, d := range splitList(v) {
			cfg.BlockedDomains = append(cfg.BlockedDomains, asciiLower(d))
		}
	}
	return cfg
}

// Apply runs the rule on one record. The input record is not modified.
func Apply(cfg Config, input Record) Outcome {
	// 1. Trim every text value and every text-list element.
	rec := trimRecord(input)

	// 2. Required fields must be present and non-empty.
	for _, name := range cfg.RequiredFields {
		i := fieldIndex(rec, name)
		if i < 0 || isEmpty(rec.Fields[i].Value) {
			return Outcome{Kind: Drop, Reason: "missing required field `" + name + "`"}
		}
	}

	// 3. No email field: keep the trimmed record as it is.
	emailIdx := fieldIndex(rec, cfg.EmailField)
	if emailIdx < 0 || rec.Fields[emailIdx].Value.Kind == Null {
		return Outcome{Kind: Keep, Record: rec}
	}

	// 4. to 7. The addresses, valid, with blocked domains removed.
	kept, held, end := Addresses(cfg, rec.Fields[emailIdx].Value, nil)
	if end != nil {
		return *end
	}

	// 8. One address in, the same one out: keep. Otherwise one record per address.
	if held == 1 {
		return Outcome{Kind: Keep, Record: withField(rec, emailIdx, kept[0])}
	}
	records := make([]Record, len(kept))
	for i, a := range kept {
		records[i] = withField(rec, emailIdx, a)
	}
	return Outcome{Kind: Split, Records: records}
}

// Addresses runs steps 4 to 7 on the trimmed value of the email field: the addresses it
// holds that are not of a blocked domain, lowercased, in order, and how many it held in
// all; or the outcome that ends the record (a drop or an error). The addresses are
// appended to buf[:0], which may be reused from record to record.
func Addresses(cfg Config, v Value, buf []string) (kept []string, held int, end *Outcome) {
	addresses := buf[:0]
	add := func(p string) {
		if a := asciiLower(trim(p)); a != "" {
			addresses = append(addresses, a)
		}
	}
	// 4. and 5. Collect the addresses.
	switch v.Kind {
	case Text:
		for start, i := 0, 0; i <= len(v.Text); i++ {
			if i == len(v.Text) || strings.IndexByte(addressSeparators, v.Text[i]) >= 0 {
				add(v.Text[start:i])
				start = i + 1
			}
		}
	case TextList:
		for _, p := range v.List {
			add(p)
		}
	default:
		return nil, 0, &Outcome{
			Kind:    Error,
			Code:    "invalid-type",
			Message: "field `" + cfg.EmailField + "` must be text, found " + v.Kind.String(),
		}
	}
	if len(addresses) == 0 {
		return nil, 0, &Outcome{Kind: Drop, Reason: "field `" + cfg.EmailField + "` holds no address"}
	}

	// 6. Every address must be valid; the first invalid one is reported.
	for _, a := range addresses {
		if !IsValidAddress(a) {
			return nil, 0, &Outcome{
				Kind:    Error,
				Code:    "invalid-email",
				Message: "field `" + cfg.EmailField + "`: `" + a + "` is not a valid email address",
			}
		}
	}

	// 7. Remove the addresses of blocked domains (in place: each is read before it can be
	// overwritten).
	held = len(addresses)
	kept = addresses[:0]
	firstBlocked := ""
	for _, a := range addresses {
		domain := a[strings.IndexByte(a, '@')+1:]
		if slices.Contains(cfg.BlockedDomains, domain) {
			if firstBlocked == "" {
				firstBlocked = domain
			}
			continue
		}
		kept = append(kept, a)
	}
	if len(kept) == 0 {
		return nil, 0, &Outcome{Kind: Drop, Reason: "email domain `" + firstBlocked + "` is blocked"}
	}
	return kept, held, nil
}

// IsValidAddress reports whether a (lowercased) address is `local@domain` as the rule
// defines it: one `@`, a non-empty local part of `a-z 0-9` and the allowed punctuation,
// and a domain of at least two non-empty labels of `a-z 0-9 -` that do not start or end
// with `-`.
func IsValidAddress(addr string) bool {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || strings.Contains(domain, "@") || local == "" {
		return false
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; !isLowerAlnum(c) && strings.IndexByte(localPartPunctuation, c) < 0 {
			return false
		}
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, label := range labels {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isLowerAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

// trimRecord returns a copy of rec with its text values and text-list elements trimmed.
func trimRecord(rec Record) Record {
	fields := make([]Field, len(rec.Fields))
	for i, f := range rec.Fields {
		switch f.Value.Kind {
		case Text:
			f.Value.Text = trim(f.Value.Text)
		case TextList:
			list := make([]string, len(f.Value.List))
			for j, s := range f.Value.List {
				list[j] = trim(s)
			}
			f.Value.List = list
		}
		fields[i] = f
	}
	return Record{Key: rec.Key, Fields: fields}
}

// withField returns a copy of rec whose field i is set to text(addr).
func withField(rec Record, i int, addr string) Record {
	fields := make([]Field, len(rec.Fields))
	copy(fields, rec.Fields)
	fields[i].Value = TextValue(addr)
	return Record{Key: rec.Key, Fields: fields}
}

// fieldIndex returns the index of the first field called name, or -1.
func fieldIndex(rec Record, name string) int {
	for i, f := range rec.Fields {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// isEmpty reports whether a required field's value counts as missing.
func isEmpty(v Value) bool {
	switch v.Kind {
	case Null:
		return true
	case Text:
		return v.Text == ""
	case TextList:
		return len(v.List) == 0
	default:
		return false
	}
}

// splitList splits a comma-separated configuration value, trimming and dropping empties.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = trim(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// Trim removes ASCII space, tab, newline and carriage return at both ends (and nothing
// else): step 1, for one text.
func Trim(s string) string { return trim(s) }

func trim(s string) string { return strings.Trim(s, whitespaceCutset) }

// asciiLower lowercases A-Z only; other bytes, including non-ASCII UTF-8, are kept.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
