package rule

import (
	"strconv"
	"unicode/utf8"
)

// parser reads one JSON text (RFC 8259). Strings must be valid UTF-8 without raw control
// characters; the strings whose value is used (the claims' member names and `sub`) must
// also escape only Unicode scalar values (no lone surrogates). That is serde_json's
// reading of a map of raw values, which the Rust handler does: the strings it skips are
// not decoded, so it accepts a lone surrogate there, and it has no nesting limit for them.
type parser struct {
	b []byte
	i int
}

// parseClaims reads the claims: a JSON object whose `sub` is a non-empty string and whose
// `exp` is an integer (no fraction, no exponent) that fits an int64. Other members are
// ignored but must be valid JSON. Of a repeated member the last one counts.
func parseClaims(b []byte) (sub string, exp int64, ok bool) {
	p := &parser{b: b}
	p.space()
	if !p.eat('{') {
		return "", 0, false
	}
	var subText, expText []byte
	p.space()
	if !p.eat('}') {
		for {
			p.space()
			key, ok := p.string(true)
			if !ok {
				return "", 0, false
			}
			p.space()
			if !p.eat(':') {
				return "", 0, false
			}
			p.space()
			start := p.i
			if !p.value() {
				return "", 0, false
			}
			switch key {
			case "sub":
				subText = p.b[start:p.i]
			case "exp":
				expText = p.b[start:p.i]
			}
			p.space()
			if p.eat(',') {
				continue
			}
			if p.eat('}') {
				break
			}
			return "", 0, false
		}
	}
	p.space()
	if p.i != len(p.b) || subText == nil || expText == nil {
		return "", 0, false
	}

	// Both are valid JSON values already.
	if subText[0] != '"' {
		return "", 0, false
	}
	sub, ok = (&parser{b: subText}).string(true)
	if !ok || sub == "" {
		return "", 0, false
	}
	digits := expText
	if digits[0] == '-' {
		digits = digits[1:]
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return "", 0, false
		}
	}
	exp, err := strconv.ParseInt(string(expText), 10, 64)
	if err != nil {
		return "", 0, false
	}
	return sub, exp, true
}

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) eat(c byte) bool {
	if p.peek() == c && p.i < len(p.b) {
		p.i++
		return true
	}
	return false
}

func (p *parser) literal(word string) bool {
	if len(p.b)-p.i >= len(word) && string(p.b[p.i:p.i+len(word)]) == word {
		p.i += len(word)
		return true
	}
	return false
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value skips one JSON value.
func (p *parser) value() bool {
	switch c := p.peek(); {
	case c == '"':
		_, ok := p.string(false)
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		_, ok := p.number()
		return ok
	case c == '{' || c == '[':
		return p.container(c)
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	}
	return false
}

// container skips an object or an array.
func (p *parser) container(open byte) bool {
	p.i++
	closing := byte(']')
	if open == '{' {
		closing = '}'
	}
	p.space()
	if p.eat(closing) {
		return true
	}
	for {
		p.space()
		if open == '{' {
			if _, ok := p.string(false); !ok {
				return false
			}
			p.space()
			if !p.eat(':') {
				return false
			}
			p.space()
		}
		if !p.value() {
			return false
		}
		p.space()
		if p.eat(',') {
			continue
		}
		return p.eat(closing)
	}
}

// number reads a number; integer is whether it has neither fraction nor exponent.
func (p *parser) number() (integer, ok bool) {
	p.eat('-')
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return false, false
	}
	integer = true
	if p.eat('.') {
		integer = false
		if p.digits() == 0 {
			return false, false
		}
	}
	if p.eat('e') || p.eat('E') {
		integer = false
		if !p.eat('+') {
			p.eat('-')
		}
		if p.digits() == 0 {
			return false, false
		}
	}
	return integer, true
}

func (p *parser) digits() int {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

// string reads a string and, when decode is set, returns its value (checking that its
// escapes are Unicode scalar values).
func (p *parser) string(decode bool) (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	var out []byte
	for {
		if p.i >= len(p.b) {
			return "", false
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), true
		case c < 0x20:
			return "", false
		case c == '\\':
			p.i++
			r, ok := p.escape(decode)
			if !ok {
				return "", false
			}
			if decode {
				out = utf8.AppendRune(out, r)
			}
		case c < utf8.RuneSelf:
			if decode {
				out = append(out, c)
			}
			p.i++
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size <= 1 {
				return "", false
			}
			if decode {
				out = append(out, p.b[p.i:p.i+size]...)
			}
			p.i += size
		}
	}
}

// escape reads what follows a backslash in a string; with strict unset, `\uXXXX` may be
// any four hex digits.
func (p *parser) escape(strict bool) (rune, bool) {
	if p.i >= len(p.b) {
		return 0, false
	}
	c := p.b[p.i]
	p.i++
	switch c {
	case '"', '\\', '/':
		return rune(c), true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	case 'u':
		r, ok := p.hex4()
		switch {
		case !ok:
			return 0, false
		case !strict:
			return r, true
		case r >= 0xdc00 && r <= 0xdfff:
			return 0, false
		case r >= 0xd800 && r <= 0xdbff:
			if !p.literal(`\u`) {
				return 0, false
			}
			low, ok := p.hex4()
			if !ok || low < 0xdc00 || low > 0xdfff {
				return 0, false
			}
			return 0x10000 + (r-0xd800)<<10 + (low - 0xdc00), true
		}
		return r, true
	}
	return 0, false
}

func (p *parser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	p.i += 4
	return r, true
}
