// The JSON writing of http-auth/rule/json.go (kept identical: each handler is its own Go
// module, and rule packages import nothing outside it so that they test natively).

package rule

// appendJSONString appends s as a JSON string the way the Rust handlers write it: `"` and
// `\` escaped, control characters below 0x20 as their short escape (\b \f \n \r \t) or
// \u00xx, everything else (non-ASCII included, U+2028 and U+2029 too) as it is.
func appendJSONString(dst []byte, s string) []byte {
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

// errorBody is `{"error":MESSAGE}`.
func errorBody(message string) []byte {
	return append(appendJSONString([]byte(`{"error":`), message), '}')
}
