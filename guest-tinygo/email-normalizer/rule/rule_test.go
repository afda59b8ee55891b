package rule

import (
	"reflect"
	"testing"
)

// config builds a Config the way the guest does, from key/value pairs.
func config(kv ...string) Config {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return ParseConfig(func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	})
}

func text(s string) Value           { return TextValue(s) }
func list(s ...string) Value        { return Value{Kind: TextList, List: s} }
func field(n string, v Value) Field { return Field{Name: n, Value: v} }
func record(fs ...Field) Record     { return Record{Key: "k", Fields: fs} }

func keep(r Record) Outcome         { return Outcome{Kind: Keep, Record: r} }
func drop(reason string) Outcome    { return Outcome{Kind: Drop, Reason: reason} }
func split(rs ...Record) Outcome    { return Outcome{Kind: Split, Records: rs} }
func fail(code, msg string) Outcome { return Outcome{Kind: Error, Code: code, Message: msg} }

func TestApply(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		in   Record
		want Outcome
	}{
		{
			name: "trims and lowercases a single address",
			cfg:  config(),
			in:   record(field("name", text(" Ada\t")), field("email", text("  Ada.Lovelace@Example.COM \r\n"))),
			want: keep(record(field("name", text("Ada")), field("email", text("ada.lovelace@example.com")))),
		},
		{
			name: "splits on comma and semicolon, keeping field position",
			cfg:  config(),
			in:   record(field("email", text("grace@navy.mil; g.hopper@Example.org")), field("plan", text("team"))),
			want: split(
				record(field("email", text("grace@navy.mil")), field("plan", text("team"))),
				record(field("email", text("g.hopper@example.org")), field("plan", text("team"))),
			),
		},
		{
			name: "a trailing separator leaves one address, which is kept",
			cfg:  config(),
			in:   record(field("email", text("ken@bell-labs.com,"))),
			want: keep(record(field("email", text("ken@bell-labs.com")))),
		},
		{
			name: "a text-list of one address becomes text",
			cfg:  config(),
			in:   record(field("email", list(" Barbara@MIT.edu "))),
			want: keep(record(field("email", text("barbara@mit.edu")))),
		},
		{
			name: "a text-list is split per element",
			cfg:  config(),
			in:   record(field("email", list("a@b.co", "c@d.co"))),
			want: split(record(field("email", text("a@b.co"))), record(field("email", text("c@d.co")))),
		},
		{
			name: "missing required field",
			cfg:  config(),
			in:   record(field("name", text("Alan"))),
			want: drop("missing required field `email`"),
		},
		{
			name: "required fields in order, blank text counts as missing",
			cfg:  config("required-fields", "name, plan", "email-field", "mail"),
			in:   record(field("plan", text("pro")), field("name", text(" \t"))),
			want: drop("missing required field `name`"),
		},
		{
			name: "empty text-list counts as missing",
			cfg:  config(),
			in:   record(field("email", list())),
			want: drop("missing required field `email`"),
		},
		{
			name: "no email field and not required: kept trimmed",
			cfg:  config("required-fields", ""),
			in:   record(field("name", text(" x "))),
			want: keep(record(field("name", text("x")))),
		},
		{
			name: "null email field and not required: kept",
			cfg:  config("required-fields", "name"),
			in:   record(field("name", text("x")), field("email", Value{Kind: Null})),
			want: keep(record(field("name", text("x")), field("email", Value{Kind: Null}))),
		},
		{
			name: "wrong type",
			cfg:  config(),
			in:   record(field("email", Value{Kind: Integer, Int: 42})),
			want: fail("invalid-type", "field `email` must be text, found integer"),
		},
		{
			name: "only separators",
			cfg:  config(),
			in:   record(field("email", text(" , ; "))),
			want: drop("field `email` holds no address"),
		},
		{
			name: "first invalid address is reported",
			cfg:  config(),
			in:   record(field("email", text("ok@x.io, Edsger at utexas, bad@"))),
			want: fail("invalid-email", "field `email`: `edsger at utexas` is not a valid email address"),
		},
		{
			name: "all addresses blocked names the first blocked domain",
			cfg:  config("blocked-domains", "mailinator.com, Spam.IO"),
			in:   record(field("email", text("a@spam.io; b@mailinator.com"))),
			want: drop("email domain `spam.io` is blocked"),
		},
		{
			name: "some addresses blocked: split of the rest",
			cfg:  config("blocked-domains", "mailinator.com"),
			in:   record(field("email", text("a@mailinator.com; b@ok.org"))),
			want: split(record(field("email", text("b@ok.org")))),
		},
		{
			name: "blocked domains match exactly, not subdomains",
			cfg:  config("blocked-domains", "spam.com"),
			in:   record(field("email", text("a@mail.spam.com"))),
			want: keep(record(field("email", text("a@mail.spam.com")))),
		},
		{
			name: "one address left after blocking is still a split",
			cfg:  config("blocked-domains", "spam.com"),
			in:   record(field("email", list("a@spam.com", "b@ok.org"))),
			want: split(record(field("email", text("b@ok.org")))),
		},
		{
			name: "the email field's name is used as given",
			cfg:  config("email-field", " email", "required-fields", ""),
			in:   record(field("email", text("NOT AN ADDRESS"))),
			want: keep(record(field("email", text("NOT AN ADDRESS")))),
		},
		{
			name: "of a name given twice, the first counts and only it is replaced",
			cfg:  config(),
			in:   record(field("email", text(" A@b.co ")), field("email", Value{Kind: Integer, Int: 1})),
			want: keep(record(field("email", text("a@b.co")), field("email", Value{Kind: Integer, Int: 1}))),
		},
		{
			name: "a blank first occurrence is missing even if a later one is set",
			cfg:  config(),
			in:   record(field("email", text(" ")), field("email", text("a@b.co"))),
			want: drop("missing required field `email`"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Apply(tt.cfg, tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Apply() =\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
}

func TestIsValidAddress(t *testing.T) {
	valid := []string{"a@b.co", "x.y+z@mail.example.org", "o'neil@a-b.c-d.ef", "#!$%&'*+/=?^_`{|}~-@x.y", "1@2.3"}
	invalid := []string{
		"", "@b.co", "a@", "a@b", "a@@b.co", "a@b@c.co", "a@.b.co", "a@b..co", "a@b.co.",
		"a@-b.co", "a@b-.co", "a@b_c.co", "a b@c.co", "A@b.co", "a@B.co", "a(b)@c.co", "é@b.co",
	}
	for _, a := range valid {
		if !IsValidAddress(a) {
			t.Errorf("IsValidAddress(%q) = false, want true", a)
		}
	}
	for _, a := range invalid {
		if IsValidAddress(a) {
			t.Errorf("IsValidAddress(%q) = true, want false", a)
		}
	}
}

func TestTrimAndLowerAreASCIIOnly(t *testing.T) {
	// U+00A0 (no-break space) is not trimmed and `É` is not lowercased.
	if got := trim("\u00a0 x \v"); got != "\u00a0 x \v" {
		t.Errorf("trim() = %q", got)
	}
	if got := asciiLower("ÉA"); got != "Éa" {
		t.Errorf("asciiLower() = %q", got)
	}
}

func TestInputIsNotModified(t *testing.T) {
	in := record(field("email", list(" A@b.co ", "c@d.co")))
	Apply(config(), in)
	if want := record(field("email", list(" A@b.co ", "c@d.co"))); !reflect.DeepEqual(in, want) {
		t.Errorf("input changed to %+v", in)
	}
}

func TestAddressesReusesItsBufferWithoutMixingRecords(t *testing.T) {
	cfg := config(KeyBlockedDomains, "spam.example")
	var buf []string
	kept, held, end := Addresses(cfg, text("a@x.org;; B@Y.org , c@spam.example"), buf)
	if end != nil || held != 3 || !reflect.DeepEqual(kept, []string{"a@x.org", "b@y.org"}) {
		t.Fatalf("first: %q %d %+v", kept, held, end)
	}
	buf = kept
	kept, held, end = Addresses(cfg, list("d@z.org"), buf)
	if end != nil || held != 1 || !reflect.DeepEqual(kept, []string{"d@z.org"}) {
		t.Fatalf("second: %q %d %+v", kept, held, end)
	}
	_, _, end = Addresses(cfg, text(" ,; "), buf)
	if want := drop("field `email` holds no address"); end == nil || !reflect.DeepEqual(*end, want) {
		t.Fatalf("empty: %+v", end)
	}
	_, _, end = Addresses(cfg, Value{Kind: Integer, Int: 3}, buf)
	if want := fail("invalid-type", "field `email` must be text, found integer"); end == nil || !reflect.DeepEqual(*end, want) {
		t.Fatalf("integer: %+v", end)
	}
}
