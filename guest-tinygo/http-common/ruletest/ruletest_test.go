package ruletest

import "testing"

type response struct {
	Status  uint16
	Headers [][2]string
	Body    []byte
}

// recorder counts failures instead of failing.
type recorder struct {
	testing.TB
	failed int
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed++ }

func TestExpect(t *testing.T) {
	base := response{Status: 200, Headers: [][2]string{{"a", "1"}, {"b", "2"}}, Body: []byte("x")}
	for _, tt := range []struct {
		name string
		got  response
		fail bool
	}{
		{"same", response{200, [][2]string{{"a", "1"}, {"b", "2"}}, []byte("x")}, false},
		{"status", response{201, base.Headers, base.Body}, true},
		{"body", response{200, base.Headers, []byte("y")}, true},
		{"header order", response{200, [][2]string{{"b", "2"}, {"a", "1"}}, base.Body}, true},
		{"header missing", response{200, base.Headers[:1], base.Body}, true},
		{"header value", response{200, [][2]string{{"a", "1"}, {"b", "3"}}, base.Body}, true},
	} {
		r := &recorder{TB: t}
		Expect(r, tt.got, base)
		if (r.failed > 0) != tt.fail {
			t.Errorf("%s: %d failures", tt.name, r.failed)
		}
	}
}
