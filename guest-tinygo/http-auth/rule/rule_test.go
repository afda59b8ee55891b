package rule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"witplug.dev/http-common/ruletest"
)

const key = "secret"
const now = 1_700_000_000

var b64 = base64.RawURLEncoding

// sign makes `P.S` of the claims text with key k.
func sign(k, claims string) string {
	p := b64.EncodeToString([]byte(claims))
	mac := hmac.New(sha256.New, []byte(k))
	mac.Write([]byte(p))
	return p + "." + b64.EncodeToString(mac.Sum(nil))
}

// signRaw signs an already encoded P.
func signRaw(k, p string) string {
	mac := hmac.New(sha256.New, []byte(k))
	mac.Write([]byte(p))
	return p + "." + b64.EncodeToString(mac.Sum(nil))
}

func auth(value string) Request {
	return Request{Key: key, HasKey: true, Authorization: []byte(value), HasAuthorization: true, Now: now}
}

func deny(message string) Response {
	return Response{
		Status:  401,
		Headers: [][2]string{{"content-type", "application/json"}, {"www-authenticate", "Bearer"}},
		Body:    []byte(`{"error":"` + message + `"}`),
	}
}

func allow(body string, identity ...string) Response {
	headers := [][2]string{{"content-type", "application/json"}}
	for _, id := range identity {
		headers = append(headers, [2]string{"x-identity", id})
	}
	return Response{Status: 200, Headers: headers, Body: []byte(body)}
}

func TestCheck(t *testing.T) {
	good := sign(key, `{"sub":"alice","exp":1700000001}`)
	tests := []struct {
		name string
		req  Request
		want Response
	}{
		{"no key", Request{Authorization: []byte("Bearer " + good), HasAuthorization: true, Now: now},
			Response{Status: 500, Headers: [][2]string{{"content-type", "application/json"}}, Body: []byte(`{"error":"auth-key is not configured"}`)}},
		{"no key wins over no header", Request{Now: now},
			Response{Status: 500, Headers: [][2]string{{"content-type", "application/json"}}, Body: []byte(`{"error":"auth-key is not configured"}`)}},
		{"no header", Request{Key: key, HasKey: true, Now: now}, deny("missing bearer token")},
		{"empty header", auth(""), deny("not a bearer token")},
		{"valid", auth("Bearer " + good), allow(`{"sub":"alice","exp":1700000001}`, "alice")},
		{"scheme in any case", auth("bEARER " + good), allow(`{"sub":"alice","exp":1700000001}`, "alice")},
		{"basic", auth("Basic " + good), deny("not a bearer token")},
		{"scheme only", auth("Bearer"), deny("not a bearer token")},
		{"scheme and space only", auth("Bearer "), deny("not a bearer token")},
		{"two spaces", auth("Bearer  " + good), deny("not a bearer token")},
		{"tab", auth("Bearer\t" + good), deny("not a bearer token")},
		{"no space", auth("Bearer" + good), deny("not a bearer token")},
		{"bearerx", auth("Bearerx " + good), deny("not a bearer token")},
		{"no dot", auth("Bearer abc"), deny("malformed token")},
		{"two dots", auth("Bearer " + good + ".x"), deny("malformed token")},
		{"trailing space", auth("Bearer " + good + " "), deny("malformed token")},
		{"padding in P", auth("Bearer " + signRaw(key, "eyJ9=")), deny("malformed token")},
		{"padding in S", auth("Bearer " + good + "="), deny("malformed token")},
		{"standard alphabet", auth("Bearer " + strings.NewReplacer("-", "+", "_", "/").Replace(sign(key, `{"sub":"a>>>?","exp":1}`))), deny("malformed token")},
		{"newline inside", auth("Bearer " + good[:4] + "\n" + good[4:]), deny("malformed token")},
		{"P of impossible length", auth("Bearer " + signRaw(key, "abcde")), deny("malformed token")},
		{"P with trailing bits", auth("Bearer " + signRaw(key, "YR")), deny("malformed token")},
		{"S of 31 bytes", auth("Bearer " + good[:len(good)-2]), deny("malformed token")},
		{"S of 33 bytes", auth("Bearer " + good + "AA"), deny("malformed token")},
		{"non-ASCII", auth("Bearer é." + strings.Split(good, ".")[1]), deny("malformed token")},
		{"bad signature", auth("Bearer " + sign("other", `{"sub":"alice","exp":1700000001}`)), deny("bad signature")},
		{"bad signature before bad claims", auth("Bearer " + sign("other", `nope`)), deny("bad signature")},
		{"empty P, good signature", auth("Bearer " + signRaw(key, "")), deny("malformed claims")},
		{"not JSON", auth("Bearer " + sign(key, `nope`)), deny("malformed claims")},
		{"array", auth("Bearer " + sign(key, `["alice",1800000000]`)), deny("malformed claims")},
		{"no sub", auth("Bearer " + sign(key, `{"exp":1800000000}`)), deny("malformed claims")},
		{"no exp", auth("Bearer " + sign(key, `{"sub":"alice"}`)), deny("malformed claims")},
		{"empty sub", auth("Bearer " + sign(key, `{"sub":"","exp":1800000000}`)), deny("malformed claims")},
		{"sub not a string", auth("Bearer " + sign(key, `{"sub":7,"exp":1800000000}`)), deny("malformed claims")},
		{"null sub", auth("Bearer " + sign(key, `{"sub":null,"exp":1800000000}`)), deny("malformed claims")},
		{"float exp", auth("Bearer " + sign(key, `{"sub":"a","exp":1.5}`)), deny("malformed claims")},
		{"integral float exp", auth("Bearer " + sign(key, `{"sub":"a","exp":1800000000.0}`)), deny("malformed claims")},
		{"exponent exp", auth("Bearer " + sign(key, `{"sub":"a","exp":1e10}`)), deny("malformed claims")},
		{"string exp", auth("Bearer " + sign(key, `{"sub":"a","exp":"1800000000"}`)), deny("malformed claims")},
		{"exp over i64", auth("Bearer " + sign(key, `{"sub":"a","exp":9223372036854775808}`)), deny("malformed claims")},
		{"exp i64 max", auth("Bearer " + sign(key, `{"sub":"a","exp":9223372036854775807}`)), allow(`{"sub":"a","exp":9223372036854775807}`, "a")},
		{"exp i64 min", auth("Bearer " + sign(key, `{"sub":"a","exp":-9223372036854775808}`)), deny("token expired")},
		{"exp below i64", auth("Bearer " + sign(key, `{"sub":"a","exp":-9223372036854775809}`)), deny("malformed claims")},
		{"leading zero exp", auth("Bearer " + sign(key, `{"sub":"a","exp":01800000000}`)), deny("malformed claims")},
		{"plus exp", auth("Bearer " + sign(key, `{"sub":"a","exp":+1800000000}`)), deny("malformed claims")},
		{"minus zero exp is zero", auth("Bearer " + sign(key, `{"sub":"a","exp":-0}`)), deny("token expired")},
		{"repeated sub: the last counts", auth("Bearer " + sign(key, `{"sub":7,"sub":"b","exp":1800000000}`)), allow(`{"sub":"b","exp":1800000000}`, "b")},
		{"repeated sub: the last is bad", auth("Bearer " + sign(key, `{"sub":"a","sub":"","exp":1800000000}`)), deny("malformed claims")},
		{"repeated exp: the last counts", auth("Bearer " + sign(key, `{"sub":"a","exp":1800000000,"exp":1}`)), deny("token expired")},
		{"repeated exp: the last is bad", auth("Bearer " + sign(key, `{"sub":"a","exp":1,"exp":1.5}`)), deny("malformed claims")},
		{"earlier sub not decoded", auth("Bearer " + sign(key, `{"sub":"\ud800","sub":"b","exp":1800000000}`)), allow(`{"sub":"b","exp":1800000000}`, "b")},
		{"keys are case-sensitive", auth("Bearer " + sign(key, `{"SUB":"a","exp":1800000000}`)), deny("malformed claims")},
		{"escaped key", auth("Bearer " + sign(key, `{"s\u0075b":"a","exp":1800000000}`)), allow(`{"sub":"a","exp":1800000000}`, "a")},
		{"trailing comma", auth("Bearer " + sign(key, `{"sub":"a","exp":1800000000,}`)), deny("malformed claims")},
		{"trailing text", auth("Bearer " + sign(key, `{"sub":"a","exp":1800000000}x`)), deny("malformed claims")},
		{"two objects", auth("Bearer " + sign(key, `{"sub":"a","exp":1800000000}{}`)), deny("malformed claims")},
		{"white space around", auth("Bearer " + sign(key, " \t\r\n{ \"sub\" : \"a\" ,\n\"exp\": 1800000000 }\n")), allow(`{"sub":"a","exp":1800000000}`, "a")},
		{"other members ignored", auth("Bearer " + sign(key, `{"iss":{"x":[1,2.5e-3,true,false,null,"s"]},"sub":"a","exp":1800000000,"aud":[]}`)), allow(`{"sub":"a","exp":1800000000}`, "a")},
		{"invalid other member", auth("Bearer " + sign(key, `{"sub":"a","exp":1800000000,"x":tru}`)), deny("malformed claims")},
		{"invalid UTF-8 in sub", auth("Bearer " + sign(key, "{\"sub\":\"a\xff\",\"exp\":1800000000}")), deny("malformed claims")},
		{"invalid UTF-8 elsewhere", auth("Bearer " + sign(key, "{\"sub\":\"a\",\"exp\":1800000000,\"x\":\"\xc3\"}")), deny("malformed claims")},
		{"lone surrogate", auth("Bearer " + sign(key, `{"sub":"\ud800","exp":1800000000}`)), deny("malformed claims")},
		{"lone low surrogate", auth("Bearer " + sign(key, `{"sub":"\udc00x","exp":1800000000}`)), deny("malformed claims")},
		{"high surrogate then not low", auth("Bearer " + sign(key, `{"sub":"\ud800\u0041","exp":1800000000}`)), deny("malformed claims")},
		{"lone surrogate in a name", auth("Bearer " + sign(key, `{"\ud800":1,"sub":"a","exp":1800000000}`)), deny("malformed claims")},
		{"lone surrogate in an ignored member is skipped", auth("Bearer " + sign(key, `{"x":["\ud800",{"\udc00":1}],"sub":"a","exp":1800000000}`)), allow(`{"sub":"a","exp":1800000000}`, "a")},
		{"bad hex in an ignored member", auth("Bearer " + sign(key, `{"x":"\u00g0","sub":"a","exp":1800000000}`)), deny("malformed claims")},
		{"raw control character in an ignored member", auth("Bearer " + sign(key, "{\"x\":\"\x01\",\"sub\":\"a\",\"exp\":1800000000}")), deny("malformed claims")},
		{"raw control character", auth("Bearer " + sign(key, "{\"sub\":\"a\tb\",\"exp\":1800000000}")), deny("malformed claims")},
		{"bad escape", auth("Bearer " + sign(key, `{"sub":"\x41","exp":1800000000}`)), deny("malformed claims")},
		{"deep nesting in an ignored member", auth("Bearer " + sign(key, `{"sub":"a","exp":1800000000,"x":`+strings.Repeat(`[{"y":`, 5000)+"0"+strings.Repeat("}]", 5000)+`}`)), allow(`{"sub":"a","exp":1800000000}`, "a")},
		{"unbalanced nesting", auth("Bearer " + sign(key, `{"sub":"a","exp":1800000000,"x":[[]}`)), deny("malformed claims")},
		{"empty object", auth("Bearer " + sign(key, `{}`)), deny("malformed claims")},
		{"null", auth("Bearer " + sign(key, `null`)), deny("malformed claims")},
		{"missing value", auth("Bearer " + sign(key, `{"sub":"a","exp":}`)), deny("malformed claims")},
		{"number forms in an ignored member", auth("Bearer " + sign(key, `{"x":[-0,0.5,1E+2,-1e-2],"sub":"a","exp":1800000000}`)), allow(`{"sub":"a","exp":1800000000}`, "a")},
		{"bad number in an ignored member", auth("Bearer " + sign(key, `{"x":01,"sub":"a","exp":1800000000}`)), deny("malformed claims")},
		{"bad fraction in an ignored member", auth("Bearer " + sign(key, `{"x":1.,"sub":"a","exp":1800000000}`)), deny("malformed claims")},
		{"expired now", auth("Bearer " + sign(key, `{"sub":"a","exp":1700000000}`)), deny("token expired")},
		{"expired long ago", auth("Bearer " + sign(key, `{"sub":"a","exp":-5}`)), deny("token expired")},
		{"surrogate pair, escapes in sub", auth("Bearer " + sign(key, `{"sub":"\ud83d\ude00\"\\\/\b\f\n\r\t\u0001\u001F\u007f\u2028","exp":1800000000}`)),
			allow("{\"sub\":\"\U0001F600\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\u2028\",\"exp\":1800000000}")},
		{"non-ASCII sub: no x-identity", auth("Bearer " + sign(key, `{"sub":"zoë","exp":1800000000}`)), allow(`{"sub":"zoë","exp":1800000000}`)},
		{"printable ASCII sub", auth("Bearer " + sign(key, `{"sub":" a~b <c> ","exp":1800000000}`)), allow(`{"sub":" a~b <c> ","exp":1800000000}`, " a~b <c> ")},
		{"DEL in sub: no x-identity", auth("Bearer " + sign(key, `{"sub":"a\u007f","exp":1800000000}`)), allow("{\"sub\":\"a\x7f\",\"exp\":1800000000}")},
		{"empty key is a key", Request{HasKey: true, Authorization: []byte("Bearer " + sign("", `{"sub":"a","exp":1800000000}`)), HasAuthorization: true, Now: now},
			allow(`{"sub":"a","exp":1800000000}`, "a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { ruletest.Expect(t, Check(tt.req), tt.want) })
	}
}
