// Package jsonw writes JSON the way the Rust HTTP handlers do (http_common::json_string),
// which differs from encoding/json: no HTML escaping, U+2028 and U+2029 raw.
package jsonw

// AppendString appends s as a JSON string: `"` and `\` escaped, control characters below
// 0x20 as their short escape (\b \f \n \r \t) or \u00xx, everything else (non-ASCII
// included, U+2028 and U+2029 too) as it is.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// ErrorBody is `{"error":MESSAGE}`.
func ErrorBody(message string) []byte {
	return append(AppendString([]byte(`{"error":`), message), '}')
}
