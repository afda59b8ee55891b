// Package ruletest is what the rule packages' table tests share. Only their tests import
// it.
package ruletest

import "testing"

// Response is the shape of every rule package's Response: status, headers in order, body.
type Response = struct {
	Status  uint16
	Headers [][2]string
	Body    []byte
}

// Expect fails t when got and want differ in status, headers (names, values and order)
// or body. R is a rule package's Response type.
func Expect[R ~Response](t testing.TB, got, want R) {
	t.Helper()
	g, w := Response(got), Response(want)
	if g.Status != w.Status || string(g.Body) != string(w.Body) || !sameHeaders(g.Headers, w.Headers) {
		t.Errorf("got %d %q %s, want %d %q %s", g.Status, g.Headers, g.Body, w.Status, w.Headers, w.Body)
	}
}

func sameHeaders(a, b [][2]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
