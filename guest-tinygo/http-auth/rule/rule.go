// Package rule is the bearer-token check of the `http-auth` handler on plain Go values
// (the spec is "bearer-token check" in tasks/serve-spec.md). It imports no bindings, so its
// tests run natively.
package rule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"

	"witplug.dev/http-common/jsonw"
)

// Request is what the check reads.
type Request struct {
	// Key is the config entry `auth-key`; HasKey whether it is set.
	Key    string
	HasKey bool
	// Authorization is the first `authorization` header value; HasAuthorization whether
	// there is one.
	Authorization    []byte
	HasAuthorization bool
	// Now is the wall clock, in Unix seconds.
	Now int64
}

// Response is the answer as plain values.
type Response struct {
	Status  uint16
	Headers [][2]string
	Body    []byte
}

const jsonType = "application/json"

// Check decides; the first failing step answers.
func Check(req Request) Response {
	if !req.HasKey {
		return Response{
			Status:  500,
			Headers: [][2]string{{"content-type", jsonType}},
			Body:    jsonw.ErrorBody("auth-key is not configured"),
		}
	}
	if !req.HasAuthorization {
		return unauthorized("missing bearer token")
	}
	token, ok := bearer(req.Authorization)
	if !ok {
		return unauthorized("not a bearer token")
	}
	payload, claims, signature, ok := split(token)
	if !ok {
		return unauthorized("malformed token")
	}
	mac := hmac.New(sha256.New, []byte(req.Key))
	mac.Write(payload)
	if !hmac.Equal(mac.Sum(nil), signature) {
		return unauthorized("bad signature")
	}
	sub, exp, ok := parseClaims(claims)
	if !ok {
		return unauthorized("malformed claims")
	}
	if exp <= req.Now {
		return unauthorized("token expired")
	}

	body := jsonw.AppendString([]byte(`{"sub":`), sub)
	body = append(body, `,"exp":`...)
	body = append(strconv.AppendInt(body, exp, 10), '}')
	headers := [][2]string{{"content-type", jsonType}}
	if printable(sub) {
		headers = append(headers, [2]string{"x-identity", sub})
	}
	return Response{Status: 200, Headers: headers, Body: body}
}

func unauthorized(message string) Response {
	return Response{
		Status:  401,
		Headers: [][2]string{{"content-type", jsonType}, {"www-authenticate", "Bearer"}},
		Body:    jsonw.ErrorBody(message),
	}
}

// bearer is the token of `Bearer TOKEN`: the scheme in any ASCII case, exactly one space,
// then a non-empty rest that does not start with another space.
func bearer(value []byte) ([]byte, bool) {
	const scheme = "bearer "
	if len(value) <= len(scheme) || value[len(scheme)] == ' ' {
		return nil, false
	}
	for i := range len(scheme) {
		c := value[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != scheme[i] {
			return nil, false
		}
	}
	return value[len(scheme):], true
}

// split cuts `P.S` and decodes both halves: P is the signed text, claims its decoding,
// signature S's decoding (32 bytes).
func split(token []byte) (payload, claims, signature []byte, ok bool) {
	dot := -1
	for i, c := range token {
		if c == '.' {
			if dot >= 0 {
				return nil, nil, nil, false
			}
			dot = i
		}
	}
	if dot < 0 {
		return nil, nil, nil, false
	}
	payload = token[:dot]
	claims, ok = decode(payload)
	if !ok {
		return nil, nil, nil, false
	}
	signature, ok = decode(token[dot+1:])
	if !ok || len(signature) != sha256.Size {
		return nil, nil, nil, false
	}
	return payload, claims, signature, true
}

// decode reads base64url without padding, canonical only (unused trailing bits zero).
// Go's decoder skips `\r` and `\n`: the alphabet is checked first so that they are refused.
func decode(text []byte) ([]byte, bool) {
	for _, c := range text {
		ok := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return nil, false
		}
	}
	encoding := base64.RawURLEncoding.Strict()
	out := make([]byte, encoding.DecodedLen(len(text)))
	n, err := encoding.Decode(out, text)
	if err != nil {
		return nil, false
	}
	return out[:n], true
}

// printable is whether s is only printable ASCII (0x20..0x7e), as `x-identity` needs.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
